# What flake.nix pins besides nixpkgs itself, in one place. tests/test_flake.py checks these against
# requirements.lock (its `# python X.Y` header and the CUDA major of the torch wheels' nvidia-* pins).
{
  # Python of the lock: requirements.lock was frozen under Python 3.11.
  python = "python311";

  # CUDA toolkit and NCCL of the paper profile: torch's wheels in the lock are built for CUDA 13
  # (nvidia-*-cu13, nvidia-cuda-runtime==13.*), so the toolkit (nvcc for DeepSpeed/flash-attn builds)
  # and NCCL come from the same major.
  cudaPackages = "cudaPackages_13";

  # Unicode's emoji list that names the icons (icons.py reads it). Pinned to Unicode 15.0, the
  # version Debian 12's `unicode-data` ships (the hash is that file's), so names and categories are
  # the same as on an apt-installed machine.
  emojiTest = {
    url = "https://www.unicode.org/Public/emoji/15.0/emoji-test.txt";
    hash = "sha256-hEXyOsg4jglr4Z0CYuFPzv+Fb/Ugk/I1bciUhfGoU9s=";
  };
}
