# Transporter: every target is documented in README.md.
PYTHON ?= $(shell scripts/find-python)
VENV   := .venv
BIN    := $(VENV)/bin
CLUSTERS ?= 2
DIR      ?= /tmp/transporter-testbed

.PHONY: help dev demo test lint fmt binary testbed testbed-build bench clean

help:
	@echo "make demo           set up, then run a control plane beside a local cluster until Ctrl-C"
	@echo "make dev            create .venv with transporter (editable) and the test tools"
	@echo "make test           run the whole test suite (real kube-apiservers, redis-server, SQLite)"
	@echo "make lint           ruff, mypy --strict, import contracts"
	@echo "make binary         build dist/transporter, one file (PyInstaller)"
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
	$(BIN)/pyinstaller --noconfirm --log-level WARN --distpath dist --workpath build/pyinstaller transporter.spec
	@ls -l dist/transporter

testbed: dev testbed-build
	$(BIN)/python -m tests.bed --clusters $(CLUSTERS) --dir $(DIR)

bench: dev
	$(BIN)/python bench/binary.py

clean:
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache

demo: dev testbed-build
	PYTHONPATH=. $(BIN)/python scripts/demo.py
