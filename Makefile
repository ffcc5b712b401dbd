# The two commands the README starts with: `make serve` and `make test`.
VENV := .venv
# The interpreter .venv is made from: Debian's python3.11 where the machine has it, else the
# first python3 on the PATH (override with `make PY=...`). Debian builds CPython with
# profile-guided and link-time optimisation; pyenv's default build (this machine's python3)
# has neither, and served the same sessions with 5-8% more CPU (BENCHMARKS.md, thirteenth
# round). A .venv made before keeps its interpreter: remove it to change.
PY ?= $(firstword $(wildcard /usr/bin/python3.11) python3)

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

.PHONY: serve test lint catalog
serve: $(VENV)/.installed
	$(VENV)/bin/goodcry serve --host 127.0.0.1 --port 8000

test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

catalog: $(VENV)/.installed
	$(VENV)/bin/goodcry catalog build
