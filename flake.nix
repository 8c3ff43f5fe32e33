{
  description = "gelab: GE-Lab reproduction (environment, datasets, ms-swift training, evaluation, reports)";

  # nixpkgs pinned to one full commit (branch nixos-25.11). flake.lock is written by the first
  # `nix develop` (it adds the narHash of that commit) and must then be committed: see REPRODUCE.md.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/8fd9daa3db09ced9700431c5b7ad0e8ba199b575";

  outputs = { self, nixpkgs }:
    let
      pins = import ./nix/pins.nix;
      system = "x86_64-linux";
      pkgs = import nixpkgs {
        inherit system;
        config.allowUnfree = true; # the CUDA toolkit and NCCL are unfree
      };
      python = pkgs.${pins.python};
      cuda = pkgs.${pins.cudaPackages};
      emojiTest = pkgs.fetchurl { inherit (pins.emojiTest) url hash; };

      # What the README installs from the system (apt): Python 3.11 with venv, git, the icon font
      # (fonts-noto-color-emoji) and the emoji list (unicode-data); plus make for the Makefile.
      # DVC is not taken from nixpkgs: it comes from requirements.lock (dvc==3.67.1) into .venv,
      # so the shell and a plain pip install run the very same DVC.
      base = [ python pkgs.git pkgs.gnumake pkgs.noto-fonts-color-emoji ];

      # Manylinux wheels from the lock (numpy, torch, pillow, ...) load these at run time.
      wheelLibs = [ pkgs.stdenv.cc.cc.lib pkgs.zlib ];

      # On entry: point gelab at the font and emoji list, then create .venv with the pinned Python
      # (recreated if it was made by another interpreter) and install the shell's lock into it
      # whenever the lock changes, exactly as scripts/setup.sh does: requirements-gpu.lock (the paper
      # profile: torch 2.11.0 + CUDA 13, vLLM, hash-checked) in the default shell, requirements.lock
      # (the embedded default, CPU) in .#cpu.
      venvHook = lock: ''
        export GELAB_EMOJI_FONT=${pkgs.noto-fonts-color-emoji}/share/fonts/noto/NotoColorEmoji.ttf
        export GELAB_EMOJI_TEST=${emojiTest}
        if [ -f .venv/pyvenv.cfg ] && ! grep -q "^home = ${python}/bin$" .venv/pyvenv.cfg; then
          echo "gelab: .venv was made by another Python; recreating it with ${python.name}"
          rm -rf .venv
        fi
        [ -x .venv/bin/python ] || ${python}/bin/python -m venv .venv
        stamp=$(cat ${lock} pyproject.toml | sha256sum | cut -d' ' -f1)
        if [ "$(cat .venv/.gelab-lock 2>/dev/null)" != "$stamp" ]; then
          .venv/bin/python -m pip install -q --upgrade pip
          .venv/bin/python -m pip install -q -r ${lock}
          .venv/bin/python -m pip install -q --no-deps -e .
          echo "$stamp" > .venv/.gelab-lock
        fi
        source .venv/bin/activate
        # data/emoji (tracked by data.dvc): this shell's font and emoji list, unless already there
        gelab env inputs --out data/emoji > /dev/null
      '';

      # flash-attn is built from source against the lock's torch (requirements-gpu-flash-attn.txt):
      # an hour of nvcc, so the shell only says how; the paper profile refuses to start without it.
      flashAttnHint = ''
        python -c "import flash_attn" 2>/dev/null || \
          echo "gelab: flash-attn is not built yet (launch.attn_impl: flash_attn needs it): run 'make flash-attn'"
      '';
    in
    {
      devShells.${system} = {
        # Paper profile (GPU): everything above plus the CUDA toolkit (nvcc for flash-attn) and NCCL
        # of the torch wheels, and the GPU lock.
        default = pkgs.mkShell {
          packages = base ++ [ cuda.cudatoolkit cuda.nccl ];
          shellHook = ''
            export CUDA_HOME=${cuda.cudatoolkit}
            export NCCL_HOME=${cuda.nccl}
            # /run/opengl-driver/lib: the host's NVIDIA driver (libcuda) on NixOS; harmless elsewhere.
            export LD_LIBRARY_PATH=${pkgs.lib.makeLibraryPath (wheelLibs ++ [ cuda.nccl ])}:/run/opengl-driver/lib''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
          '' + venvHook "requirements-gpu.lock" + flashAttnHint;
        };

        # Embedded default (CPU only): the same shell without the CUDA downloads.
        cpu = pkgs.mkShell {
          packages = base;
          shellHook = ''
            export LD_LIBRARY_PATH=${pkgs.lib.makeLibraryPath wheelLibs}''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
          '' + venvHook "requirements.lock";
        };
      };
    };
}
