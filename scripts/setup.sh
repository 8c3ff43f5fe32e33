#!/usr/bin/env bash
# Install gelab into ./.venv on a Debian-like machine: system packages (icon font, emoji list),
# then the pinned Python lock, then the package itself. Safe to run again.
#   scripts/setup.sh          requirements.lock      (embedded default, CPU)
#   scripts/setup.sh --gpu    requirements-gpu.lock  (paper profile: Linux x86-64, CUDA 13; then `make flash-attn`)
set -euo pipefail
cd "$(dirname "$0")/.."
lock=requirements.lock
[[ ${1:-} == --gpu ]] && lock=requirements-gpu.lock

need_apt=()
# GELAB_EMOJI_FONT / GELAB_EMOJI_TEST (set by `nix develop`) point at files installed another way.
[[ -f ${GELAB_EMOJI_FONT:-/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf} ]] || need_apt+=(fonts-noto-color-emoji)
[[ -f ${GELAB_EMOJI_TEST:-/usr/share/unicode/emoji/emoji-test.txt} ]] || need_apt+=(unicode-data)
command -v git >/dev/null || need_apt+=(git)
if ((${#need_apt[@]})); then
  sudo_cmd=(); [[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${need_apt[@]}"
fi

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
"$PYTHON" -c 'import sys; assert sys.version_info[:2] >= (3, 11), "gelab needs Python >= 3.11"'
[[ -x .venv/bin/python ]] || "$PYTHON" -m venv .venv
# pip, without the warnings some machines print for every missing local package index
pip_quiet() { .venv/bin/python -m pip "$@" 2>&1 | { grep -v "^WARNING: Location '.*' is ignored" || true; }; }
pip_quiet install -q --upgrade pip
pip_quiet install -q -r "$lock"
pip_quiet install -q --no-deps -e .
# The pipeline's external inputs (data/, tracked by data.dvc): the font and emoji list the pages are
# drawn with, copied from the system unless data/emoji is already there (e.g. from `dvc pull`).
.venv/bin/gelab env inputs --out data/emoji
echo "gelab installed in .venv ($(.venv/bin/python --version), $lock)"
