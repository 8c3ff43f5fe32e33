# The two set-up commands of the README: `make repro` (install + the whole pipeline on the
# embedded default) and `make test` (install + the test suite). The paper profile's GPU machine:
# `make setup-gpu` (requirements-gpu.lock) and `make flash-attn` (REPRODUCE.md §1).
# `make learning-checks`: each training stage on a small fixed problem (docs/training.md, metrics/learning/).
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup setup-gpu flash-attn repro test bench bench-gpu lock lock-gpu paper-diff learning-checks paper-rehearsal

setup:
	bash scripts/setup.sh

setup-gpu:  # Linux x86-64 with CUDA 13 (glibc >= 2.35, Python 3.11): the hash-checked GPU lock
	bash scripts/setup.sh --gpu

# flash-attn from source against the installed torch (no official wheel for torch 2.11 + CUDA 13):
# nvcc of CUDA 13 from CUDA_HOME (`nix develop` sets it); sm_80 + sm_90 (A100/A800/H100/H200).
FLASH_ATTN_CUDA_ARCHS ?= 80;90
MAX_JOBS ?= 8
flash-attn:
	FLASH_ATTENTION_FORCE_BUILD=TRUE FLASH_ATTN_CUDA_ARCHS="$(FLASH_ATTN_CUDA_ARCHS)" MAX_JOBS=$(MAX_JOBS) \
	  python -m pip install --no-build-isolation --no-deps -r requirements-gpu-flash-attn.txt
	python -c "import flash_attn; print('flash-attn', flash_attn.__version__, 'loads')"

repro: setup
	dvc repro

test: setup
	python -m pytest -q

# learning-checks: needs the environment, the SFT data and the tiny model (the pipeline up to `model`);
# LEARNING_STAGES picks checks (default all three: sft st_rl mt_rl)
LEARNING_STAGES ?= sft st_rl mt_rl
learning-checks: setup
	dvc repro model
	gelab check learning --params params.yaml --out build/learning --metrics metrics/learning \
	  $(foreach s,$(LEARNING_STAGES),--stage $(s))

bench: setup  # the CPU benchmarks; bench-gpu needs a CUDA device
	for f in benchmarks/bench_*.py; do [ "$$f" = benchmarks/bench_gpu.py ] || python "$$f" || exit 1; done

bench-gpu:  # the paper profile on one GPU (BENCHMARKS.md "GPU"): needs build/env/base and build/models/tiny
	python benchmarks/bench_gpu.py --out build/bench_gpu

# paper-rehearsal: the paper profile on 2 CPU cores with a short list of substitutions (REPRODUCE.md §3);
# from the embedded run's SFT model when `make repro` has made it (answers that end: minutes, not ~25 min)
# and this checkout's DVC cache (its environment and datasets are the paper's: restored, not redrawn)
REHEARSAL_BASE := $(if $(wildcard build/checkpoints/sft/final/config.json),--base build/checkpoints/sft/final)
REHEARSAL_CACHE := $(if $(wildcard .dvc/cache),--cache .dvc/cache)
paper-rehearsal: setup  # then its checks (tests/test_paper_rehearsal.py) on what it made
	python scripts/paper_rehearsal.py --out build/paper_rehearsal $(REHEARSAL_BASE) $(REHEARSAL_CACHE)
	GELAB_REHEARSAL_REPO=build/paper_rehearsal/repo python -m pytest -q -m slow tests/test_paper_rehearsal.py

paper-diff:  # this run against the paper's numbers (REPRODUCE.md §7)
	gelab report paper-rev
	dvc metrics diff paper-targets

lock:  # the header line records the Python version (flake.nix's pin is checked against it)
	{ python -c 'import sys; print("# python %d.%d" % sys.version_info[:2])'; \
	  python -m pip freeze --exclude-editable | grep -v '^gelab'; } > requirements.lock

lock-gpu:  # resolve requirements-gpu.in for Linux x86-64 / Python 3.11 (no GPU needed), with hashes
	python scripts/gpu_lock.py lock
	python scripts/gpu_lock.py check
