# Every target has a "## description"; `make` alone prints them. Recipes stay one line each.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5001
WORKERS ?= 1
DEPLOYMENT ?= blue
STEP ?= green
PERCENT ?= 10
# Opt-in: a CPU-only torch wheel index for hosts where plain `pip install torch` pulls a multi-GB CUDA build,
# e.g. make setup TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
TORCH_INDEX_URL ?=
PIP_INDEX_ARGS := $(if $(TORCH_INDEX_URL),--extra-index-url $(TORCH_INDEX_URL))
DEMO_MODEL := build/model
# Your own model folder (or file), for serve and doctor; unset, they use the demo (trained first if missing).
MODEL_DIR ?=
SERVED := $(or $(MODEL_DIR),$(DEMO_MODEL))
# Batch scoring: a folder of input files (or one file), and the local runner's worker processes.
INPUT ?=
PROCESSES ?= 2
$(if $(filter command line,$(origin MODEL)),$(error MODEL is not a setting: serve or diagnose your own folder with MODEL_DIR=$(MODEL)))

.PHONY: help setup model serve smoke loadtest bench doctor new-model openapi validate deploy rollout invoke logs test lint format clean batch-local batch-deploy batch-invoke

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  \033[36m%-8s\033[0m %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## Create .venv/ and install the pinned dependencies (once; again when pyproject.toml changes)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --disable-pip-version-check $(PIP_INDEX_ARGS) -e '.[dev]' && touch $@

model: $(DEMO_MODEL)/manifest.json ## Train the demo digits CNN and write the model folder (weights and ONNX export) to build/model/

$(DEMO_MODEL)/manifest.json: $(VENV)/.installed model_arch/*.py model_folder/*.py training/*.py
	$(BIN)/python -m training.train --output-dir $(DEMO_MODEL)

serve: $(VENV)/.installed $(if $(MODEL_DIR),,model) ## Serve the demo, or MODEL_DIR=your folder (never trained into), on the real azmlinfsrv at 127.0.0.1:PORT (COLLECT=1: data collection to a local receiver)
	$(BIN)/python -m harness.server --model $(SERVED) --port $(PORT) --workers $(WORKERS) $(if $(MODEL_DIR),,--name digits-cnn) $(if $(COLLECT),--collect)

smoke: $(VENV)/.installed ## POST the deploy/ sample that fits the running model (or FILE=path: .json, .npy, an image) and print the answer
	$(BIN)/python -m harness.smoke --url http://127.0.0.1:$(PORT)/score $(if $(FILE),--request-file $(FILE))

loadtest: model ## Drive a fresh 2-worker server with 16 clients, check every answer (bounded: 4000 requests, 60 s)
	$(BIN)/python -m harness.loadtest --model $(DEMO_MODEL) --workers 2 --clients 16 --requests 4000 --seconds 60

bench: model ## Benchmark the template against the server's ceiling and the sample-style script, online and batch (minutes; ONLY=images, collection or batch: those rows alone)
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq wrk >/dev/null 2>&1; } || echo "wrk not installed: falling back to a slower Python load generator"
	$(if $(filter batch,$(ONLY)),$(BIN)/python -m bench.batch,$(BIN)/python -m bench.run $(if $(ONLY),--only $(ONLY),&& $(BIN)/python -m bench.batch))

doctor: $(VENV)/.installed ## Explain whether and how a model folder loads: make doctor MODEL_DIR=path (default build/model)
	$(BIN)/python -m serving.doctor $(SERVED)

new-model: $(VENV)/.installed ## Start a new architecture: make new-model NAME=my_model [SPEC_ONLY=1] (module, registry entry, test)
	$(BIN)/python -m training.scaffold $(NAME) $(if $(SPEC_ONLY),--spec-only)

openapi: $(VENV)/.installed ## Regenerate swagger2.json, swagger3.json, swagger3.1.json from the model's spec
	$(BIN)/python -m serving.openapi

validate: model ## Check every Azure ML spec offline (azure-ai-ml loaders + consistency with the code)
	$(BIN)/python -m deploy.tool validate

deploy: model ## Register build/model, create/update the endpoint and DEPLOYMENT (blue); needs az login + workspace
	$(BIN)/python -m deploy.tool deploy --deployment $(DEPLOYMENT)

rollout: model ## One blue/green step: STEP=green, then mirror, shift (PERCENT=10), then retire
	$(BIN)/python -m deploy.tool rollout --step $(STEP) --percent $(PERCENT)

invoke: $(VENV)/.installed ## Score deploy/sample-request.json on the endpoint's DEPLOYMENT in Azure
	$(BIN)/python -m deploy.tool invoke --deployment $(DEPLOYMENT)

logs: $(VENV)/.installed ## Print the last 100 log lines of DEPLOYMENT in Azure
	$(BIN)/python -m deploy.tool logs --deployment $(DEPLOYMENT)

batch-local: $(VENV)/.installed $(if $(MODEL_DIR),,model) ## Score a folder as the batch endpoint would, locally: make batch-local INPUT=folder [MODEL_DIR=...] [PROCESSES=2]
	$(BIN)/python -m batch.runner $(or $(INPUT),$(error give INPUT=folder of files to score)) --model $(SERVED) --processes $(PROCESSES)

batch-deploy: model ## Create the batch cluster, endpoint and deployment in deploy/batch/ (needs az login + workspace)
	$(BIN)/python -m deploy.tool batch-deploy

batch-invoke: $(VENV)/.installed ## Start a batch job on the batch endpoint: make batch-invoke INPUT=folder or azureml:// URI
	$(BIN)/python -m deploy.tool batch-invoke --input $(or $(INPUT),$(error give INPUT=folder or URI to score))

test: $(VENV)/.installed ## Run the test suite (unit, in-process server, real server processes, end to end)
	$(BIN)/python -m pytest

lint: $(VENV)/.installed ## Check style and common bugs with ruff
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(VENV)/.installed ## Reformat the code and apply safe ruff fixes
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

clean: ## Remove build outputs (keeps .venv/)
	rm -rf build .pytest_cache .ruff_cache
