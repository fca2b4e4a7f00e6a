# One task runner. `make run` and `make test` are the two commands of the README's Quick start.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
FHIR_NPM := .cache/npm
FHIR_EXAMPLES := $(FHIR_NPM)/node_modules/hl7.fhir.r4.examples
export MEDWEAVE_FHIR_EXAMPLES ?= $(CURDIR)/$(FHIR_EXAMPLES)

.PHONY: run test lint bench install dev fhir-examples clean definitions

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[demo,ml,print]'
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[demo,dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed

dev: $(VENV)/.dev-installed

## The official R4 examples and definitions (CC0) from the npm registry; tests read them, nothing commits them.
$(FHIR_EXAMPLES)/package.json:
	mkdir -p $(FHIR_NPM)
	cd $(FHIR_NPM) && npm install --no-save --no-audit --no-fund --loglevel=error hl7.fhir.r4.examples@4.0.1

fhir-examples: $(FHIR_EXAMPLES)/package.json

## Regenerate src/medweave/records/data/*.json from the official package.
definitions: fhir-examples dev
	$(BIN)/python scripts/build_fhir_definitions.py $(FHIR_EXAMPLES)

run: install
	$(BIN)/medweave db upgrade
	$(BIN)/medweave demo seed --if-empty
	$(BIN)/medweave serve --host 127.0.0.1 --port 8000

test: dev fhir-examples
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: dev
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/mypy src
	$(BIN)/lint-imports

bench: dev
	$(BIN)/python bench/records.py
	$(BIN)/python bench/ledger.py
	$(BIN)/python bench/telehealth.py
	$(BIN)/python bench/therapy.py
	$(BIN)/python bench/ml.py
	$(BIN)/python bench/printing.py

clean:
	rm -rf $(VENV) .cache .pytest_cache .mypy_cache .ruff_cache
