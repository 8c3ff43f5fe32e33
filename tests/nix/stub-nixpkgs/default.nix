# A stand-in for nixpkgs, just enough to evaluate flake.nix's outputs offline (tests/test_flake.py).
# A package is { name; outPath = "/stub/<name>"; }; mkShell returns its arguments.
{ system, config ? { } }:
let
  pkg = name: { inherit name; outPath = "/stub/${name}"; };
  cudaSet = set: { cudatoolkit = pkg "${set}.cudatoolkit"; nccl = pkg "${set}.nccl"; };
  pythons = builtins.listToAttrs (map (v: { name = "python3${v}"; value = pkg "python3${v}"; })
    [ "9" "10" "11" "12" "13" "14" ]);
  cudas = builtins.listToAttrs (map (v: { name = "cudaPackages_${v}"; value = cudaSet "cudaPackages_${v}"; })
    [ "11" "12" "13" ]);
in
pythons // cudas // {
  inherit system config;
  git = pkg "git";
  gnumake = pkg "gnumake";
  noto-fonts-color-emoji = pkg "noto-fonts-color-emoji";
  zlib = pkg "zlib";
  stdenv.cc.cc.lib = pkg "libstdc++";
  fetchurl = { url, hash }: pkg "fetchurl:${url}#${hash}";
  mkShell = args: args;
  lib.makeLibraryPath = paths: builtins.concatStringsSep ":" (map (p: "${p}/lib") paths);
}
