# mailflow: `make run` starts the service on its embedded defaults; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test services lint typecheck imports pytest fmt bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mailflow init
	$(BIN)/mailflow org import demo/organisations.csv
	$(BIN)/mailflow serve

test: services lint typecheck imports pytest

services:
	bash scripts/test-services.sh

lint: $(STAMP)
	$(BIN)/ruff check mailflow tests bench
	$(BIN)/ruff format --check mailflow tests bench
	$(BIN)/codespell mailflow templates tests README.md CHANGELOG.md bench demo

typecheck: $(STAMP)
	$(BIN)/mypy

imports: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP) services
	$(BIN)/pytest -q

fmt: $(STAMP)
	$(BIN)/ruff format mailflow tests bench
	$(BIN)/ruff check --fix mailflow tests bench

bench: $(STAMP)
	$(BIN)/python bench/requests.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
