# Every target of the original toolkit, each a thin door into the `modal-offload` CLI.
# The first target that needs it creates .venv and installs the project (no global installs).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CLI := $(BIN)/modal-offload
PAYLOAD ?= {"iterations":24000000,"workers":6}
CMD ?=

.DEFAULT_GOAL := help
.PHONY: help setup auth heavy heavy-modal heavy-local usage-show usage-reset cmd \
	shims-install shell-bootstrap doctor agent-runner-install agent-runner-check \
	antigravity-policy-install antigravity-policy-check test lint bench live-check clean

help:
	@echo "make heavy PAYLOAD='{...}'   run the heavy job (auto: Modal under budget, else local)"
	@echo "make test                    run the test suite"
	@echo "make setup | auth | heavy-modal | heavy-local | usage-show | usage-reset | cmd CMD='...'"
	@echo "make shims-install | shell-bootstrap | doctor | agent-runner-install | agent-runner-check"
	@echo "make antigravity-policy-install | antigravity-policy-check | lint | bench | live-check"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[modal]'
	@touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[modal,test]'
	@touch $@

setup: $(VENV)/.installed

auth: setup
	$(BIN)/modal setup

heavy: setup
	$(CLI) heavy --mode auto --payload '$(PAYLOAD)'

heavy-modal: setup
	$(CLI) heavy --mode modal --payload '$(PAYLOAD)'

heavy-local: setup
	$(CLI) heavy --mode local --payload '$(PAYLOAD)'

usage-show: setup
	$(CLI) usage show

usage-reset: setup
	$(CLI) usage reset

cmd: setup
	$(CLI) exec -c '$(CMD)'

shims-install: setup
	$(CLI) shims install

shell-bootstrap: setup
	$(CLI) shell-bootstrap install

doctor: setup
	$(CLI) doctor

agent-runner-install: setup
	$(CLI) agents install --only runner

agent-runner-check: setup
	$(CLI) agents check --only runner --live

antigravity-policy-install: setup
	$(CLI) agents install

antigravity-policy-check: setup
	$(CLI) agents check

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests testing benchmarks
	$(BIN)/mypy
	$(BIN)/mypy --strict tests

bench: $(VENV)/.installed-test
	$(BIN)/python benchmarks/run_all.py

live-check: $(VENV)/.installed-test
	$(BIN)/python -m testing.live_check

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
