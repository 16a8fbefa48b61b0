# Industriverse IDF — developer entry points. `make demo` and `make test` do all the set-up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TS := clients/typescript

.PHONY: setup demo test generate lint bench mutation soak clean

setup: $(VENV)/.installed $(TS)/node_modules/.installed

# torch first, pinned: on this project's machines 2.13.0 is a CPU wheel; a looser requirement
# would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[server,dev]'
	touch $@

$(TS)/node_modules/.installed: $(TS)/package.json $(TS)/package-lock.json
	cd $(TS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	bash tools/demo.sh

test: setup
	$(BIN)/pytest -q

generate: setup
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/buf generate

lint: setup
	$(BIN)/buf lint

bench: setup
	$(BIN)/python -m pip install -q -e '.[server,dev,bench]'
	$(BIN)/python bench/predict_latency.py --out bench/results-predict_latency-$$(date +%F).json
	$(BIN)/python bench/kernels.py --out bench/results-kernels-$$(date +%F).json
	$(BIN)/python bench/proof.py --out bench/results-proof-$$(date +%F).json
	$(BIN)/python bench/market.py --out bench/results-market-$$(date +%F).json
	$(BIN)/python bench/diffusion.py --out bench/results-diffusion-$$(date +%F).json
	$(BIN)/python bench/predict.py --out bench/results-predict-$$(date +%F).json

# Mutation testing of the physics and money code (long: not part of `make test`; docs/testing.md).
mutation: setup
	$(BIN)/python -m pip install -q -e '.[server,dev,mutation]'
	$(BIN)/python tools/mutation.py $(GROUPS)

# The flakiness check: the whole suite RUNS times in a row under HOGS CPU hogs (docs/testing.md).
RUNS ?= 10
HOGS ?= 2
soak:
	bash tools/soak.sh $(RUNS) $(HOGS)

clean:
	rm -rf $(VENV) $(TS)/node_modules $(TS)/dist .pytest_cache
