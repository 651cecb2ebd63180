# Transporter: every target is documented in README.md.
PYTHON ?= $(shell scripts/find-python)
VENV   := .venv
BIN    := $(VENV)/bin
CLUSTERS ?= 2
DIR      ?= /tmp/transporter-testbed

.PHONY: help dev demo test lint fmt binary image charts dist testbed testbed-build bench clean

help:
	@echo "make demo           set up, then run a control plane beside a local cluster until Ctrl-C"
	@echo "make dev            create .venv with transporter (editable) and the test tools"
	@echo "make test           run the whole test suite (real kube-apiservers, redis-server, SQLite)"
	@echo "make lint           ruff, mypy --strict, import contracts"
	@echo "make binary         build dist/transporter, one static file for any x86-64 Linux"
	@echo "make image          build dist/transporter-image.tar, an OCI image of that file (no daemon)"
	@echo "make charts         lint and render the Helm charts under helm/"
	@echo "make dist           binary, image and charts, with dist/SHA256SUMS of each"
	@echo "make testbed CLUSTERS=N DIR=PATH   start N local clusters until Ctrl-C"
	@echo "make bench          print the benchmark figures"

dev: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements/lock.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements/lock.txt -e '.[dev]'
	touch $@

testbed-build:
	testbed/build.sh >/dev/null
	testbed/build-controllers.sh >/dev/null

test: dev testbed-build
	$(BIN)/pytest

lint: dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

binary: dev
	scripts/build-binary

image: binary
	packaging/image/build

charts:
	helm/check

dist: binary image charts
	packaging/checksums

testbed: dev testbed-build
	$(BIN)/python -m tests.bed --clusters $(CLUSTERS) --dir $(DIR)

bench: dev
	$(BIN)/python bench/binary.py

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache

demo: dev testbed-build
	PYTHONPATH=. $(BIN)/python scripts/demo.py
