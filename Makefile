# The two set-up commands of the README: `make repro` (install + the whole pipeline on the
# embedded default) and `make test` (install + the test suite).
SHELL := /bin/bash
export PATH := $(CURDIR)/.venv/bin:$(PATH)

.PHONY: setup repro test bench lock paper-diff

setup:
	bash scripts/setup.sh

repro: setup
	dvc repro

test: setup
	python -m pytest -q

bench: setup
	for f in benchmarks/bench_*.py; do python "$$f" || exit 1; done

paper-diff:  # this run against the paper's numbers (REPRODUCE.md §7)
	gelab report paper-rev
	dvc metrics diff paper-targets

lock:  # the header line records the Python version (flake.nix's pin is checked against it)
	{ python -c 'import sys; print("# python %d.%d" % sys.version_info[:2])'; \
	  python -m pip freeze --exclude-editable | grep -v '^gelab'; } > requirements.lock
