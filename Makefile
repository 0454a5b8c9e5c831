# billsync — every command a developer or CI needs. Each target installs what it uses.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
LINT_VENV := .venv-lint
CHECKOV_VENV := .venv-checkov
PIP_FLAGS := -q --disable-pip-version-check
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: requirements/dev.txt requirements/runtime.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) --upgrade pip
	$(BIN)/pip install $(PIP_FLAGS) -r requirements/dev.txt
	$(BIN)/pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

$(SAM_VENV)/.installed: requirements/sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/sam.txt
	touch $@

$(LINT_VENV)/.installed: requirements/lint.txt
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/lint.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements/checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install $(PIP_FLAGS) -r requirements/checkov.txt
	touch $@

venv: $(BIN)/.installed  ## create the development environment

demo: venv  ## run the whole stack locally: seed, sync, watch webhooks and schedules
	$(BIN)/billsync demo

test: venv lint typecheck template pytest  ## the whole suite: what CI runs

lint: venv  ## ruff
	$(BIN)/ruff check shared functions local tests bench
	$(BIN)/ruff format --check shared functions local tests bench

typecheck: venv  ## mypy over the deployable package
	$(BIN)/mypy

pytest: venv  ## the tests
	$(BIN)/pytest

template: $(SAM_VENV)/.installed $(LINT_VENV)/.installed $(CHECKOV_VENV)/.installed venv  ## sam validate --lint, cfn-lint serverless rules, checkov, sam build
	$(BIN)/billsync config validate
	$(SAM_VENV)/bin/sam validate --lint --template template.yaml
	$(LINT_VENV)/bin/cfn-lint template.yaml --append-rules cfn_lint_serverless.rules
	# every skipped check is justified in the resource's Metadata (checkov: skip: id, comment)
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --framework cloudformation --compact --quiet --skip-download
	$(SAM_VENV)/bin/sam build --template template.yaml --build-dir .aws-sam/build

bench: venv  ## measure API requests, throughput, DynamoDB, memory, latency (writes docs/performance.md)
	$(BIN)/python bench/performance.py --sizes 1000 10000

soak: venv  ## the full soak (20,000 changes, figures in bench/results/soak.json) and 10,000 cases per property test
	HYPOTHESIS_PROFILE=soak $(BIN)/pytest -p no:cacheprovider tests/unit/test_webhook_properties.py tests/unit/domain/test_mapping_properties.py tests/unit/test_convergence_properties.py --timeout 7200
	$(BIN)/python -m bench.soak --changes 20000

format: venv  ## apply ruff's formatter and fixes
	$(BIN)/ruff format shared functions local tests bench
	$(BIN)/ruff check --fix shared functions local tests bench

clean:  ## remove environments and build output
	rm -rf $(VENV) $(SAM_VENV) $(LINT_VENV) $(CHECKOV_VENV) .aws-sam .pytest_cache .mypy_cache .ruff_cache

.PHONY: help venv demo test bench lint typecheck pytest template soak format clean
