# Everything runs inside .venv, created on first use. The CPU build of torch is installed first so that
# pip never pulls a multi-GB CUDA wheel on a machine that has no GPU.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export OMP_WAIT_POLICY ?= PASSIVE
export TOKENIZERS_PARALLELISM ?= false
export HF_HUB_OFFLINE ?= 1
export HF_DATASETS_OFFLINE ?= 1

.PHONY: install test test-slow lint bench bench-models bench-selection demo clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev,demo]"
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

test-slow: install
	$(PY) -m pytest -q -m slow

lint: install
	$(VENV)/bin/ruff check .

bench: install
	$(PY) benchmarks/complexity_report.py
	$(PY) benchmarks/bench_topk.py
	$(PY) benchmarks/bench_padding.py

# Hours on a 2-core CPU (see benchmarks/bench_models.py); on a GPU machine use benchmarks/gpu_check.sh.
bench-models: install
	$(PY) benchmarks/bench_models.py

# The scorer / top-k ablation on the selection task (paper Table 4): 11 configurations x 3 seeds.
bench-selection: install
	$(PY) benchmarks/selection_ablation.py --jobs 2

demo: install
	$(PY) examples/demo.py

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
