# The dev loop. `.ci/run` uses the same targets, so what passes here passes in CI.
VENV ?= .venv
BIN := $(VENV)/bin
SOURCES := orchestrator harness tests bench
JOBS ?= 2

.PHONY: setup lint format test-fast test regen check-generated

setup:  ## a venv with the package (editable) and every dev tool
	python3 -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'

lint:  ## ruff, ruff format and mypy --strict, as CI runs them
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy orchestrator harness

format:  ## apply ruff's fixes and formatting
	$(BIN)/ruff check --fix $(SOURCES)
	$(BIN)/ruff format $(SOURCES)

test-fast:  ## every test but the slow ones, no traceability gate
	$(BIN)/pytest -n $(JOBS) -q -m "not slow and not e2e"

test:  ## the README's test command: everything, gated on every MUST verified
	$(BIN)/pytest -n $(JOBS) --orch-gate=must

regen:  ## regenerate the OpenAPI document, the requirements index and the pacts
	$(BIN)/orchq openapi regen
	$(BIN)/orchq spec extract
	$(BIN)/orchq pact regen

check-generated:  ## the generated artefacts are current and the pact agrees with the OpenAPI document
	$(BIN)/orchq openapi regen --check
	$(BIN)/orchq spec extract --check
	$(BIN)/orchq pact regen --check
	$(BIN)/orchq pact check
