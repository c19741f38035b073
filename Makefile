# The README's commands. Each target does its own set-up on a fresh machine.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
INDEX ?= index
STAMP := $(VENV)/.installed

.PHONY: help setup index run chat serve test lint typecheck unit bench browser clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip >/dev/null
	# CPU torch first, pinned: any other torch requirement would pull gigabytes of CUDA packages.
	$(BIN)/pip install torch==2.13.0
	# llama-cpp-python from source without AMX kernels: the default native build segfaults on Gemma GGUFs
	# on CPUs with AMX (inside ggml_backend_amx_mul_mat). The built wheel is cached by pip afterwards.
	CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
		$(BIN)/pip install 'llama-cpp-python[server]==0.3.36'
	$(BIN)/pip install -e '.[st,ui,llm,eval,dev]'
	touch $@

setup: $(STAMP)  ## create .venv and install everything

# Built once from seeds/; later uploads and removals through the chat are kept (no rebuild over them).
$(INDEX)/CURRENT: | $(STAMP)
	$(BIN)/rag build seeds --index $(INDEX)

index: $(INDEX)/CURRENT  ## build or update the index over seeds/

run: index  ## build the index if needed and open the web chat at http://127.0.0.1:7860
	$(BIN)/rag serve --index $(INDEX)

chat: index  ## the terminal chat
	$(BIN)/rag chat --index $(INDEX)

browser:  ## Debian's chromium and CJK fonts for the browser test (no downloaded browser)
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	@fc-list :lang=zh 2>/dev/null | grep -q . || (apt-get update -qq && apt-get install -y -qq fonts-noto-cjk >/dev/null)

lint: $(STAMP)  ## ruff (lint + format check) on rag/ ui/ tests/
	$(BIN)/ruff check rag ui tests
	$(BIN)/ruff format --check rag ui tests

typecheck: $(STAMP)  ## mypy on rag/ and ui/
	$(BIN)/mypy rag ui

test: $(STAMP) browser lint typecheck  ## lint, types, unit and integration tests (real model, server, browser)
	$(BIN)/pytest -q -rs

bench: $(STAMP) index  ## benchmarks and evaluation reports into evals/reports/
	$(BIN)/python evals/bench.py
	$(BIN)/python evals/upload_latency.py
	$(BIN)/python evals/question_cost.py --index $(INDEX)
	$(BIN)/python evals/api_load.py
	$(BIN)/python evals/retrieve_speed.py

clean:
	rm -rf $(INDEX)/v-* $(INDEX)/damaged-* $(INDEX)/journal $(INDEX)/.lock $(INDEX)/CURRENT .pytest_cache .mypy_cache .ruff_cache
