# The two commands the README starts with: `make serve` and `make test`.
VENV := .venv
PY := python3

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
