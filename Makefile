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

.PHONY: install test test-slow lint bench bench-models bench-models-fp32 bench-models-bf16 bench-scaling bench-scaling-bf16 bench-table2 bench-table2-bf16 \
	bench-estimate bench-selection demo clean

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
	$(PY) benchmarks/logits_head.py
	$(PY) benchmarks/optimizer_step.py

# Hours on a 2-core CPU (see benchmarks/bench_models.py); on a GPU machine use benchmarks/gpu_check.sh.
bench-models: install
	$(PY) benchmarks/bench_models.py

# The paper's deep setting at 8k (training batch 1, generation batch 8 x 512 forced tokens), fp32 / bf16.
PAPER_8K := --setting deep --lengths 8192 --models blockwise,deep-pyramidion,led,pegasus-x --gen-batch 8 \
	--gen-tokens 512 --repeats 2 --steps 1 --gen-runs 1 --point-budget 1500
bench-models-fp32: install
	$(PY) benchmarks/bench_models.py $(PAPER_8K) --out benchmarks/results/paper_8k_fp32
bench-models-bf16: install
	$(PY) benchmarks/bench_models.py $(PAPER_8K) --dtype bf16 --out benchmarks/results/paper_8k_bf16

# The 2k-64k scaling of the deep setting (training batch 1, generation batch 1 x 64 tokens up to 2k), fp32 / bf16.
SCALING := --setting deep --lengths 2048,16384,32768,65536 --models blockwise,deep-pyramidion,led,pegasus-x \
	--repeats 1 --steps 1 --gen-runs 1 --gen-lengths 2048 --memory-limit-gb 23 --point-budget 1200
bench-scaling: install
	$(PY) benchmarks/bench_models.py $(SCALING) --out benchmarks/results/scaling
bench-scaling-bf16: install
	$(PY) benchmarks/bench_models.py $(SCALING) --dtype bf16 --out benchmarks/results/scaling_bf16

# Table 2 (20 shallow rows) -> benchmarks/results/table2 (table2_bf16); `make bench-estimate` sizes them first.
bench-table2: install
	$(PY) benchmarks/bench_models.py --setting shallow --repeats 2 --steps 2 --gen-runs 1
bench-table2-bf16: install
	$(PY) benchmarks/bench_models.py --setting shallow --repeats 2 --steps 2 --gen-runs 1 --dtype bf16

bench-estimate: install
	$(PY) benchmarks/bench_models.py --setting shallow --repeats 2 --steps 2 --gen-runs 1 --estimate
	$(PY) benchmarks/bench_models.py --setting shallow --repeats 2 --steps 2 --gen-runs 1 --dtype bf16 --estimate
	$(PY) benchmarks/bench_models.py $(PAPER_8K) --dtype bf16 --estimate

# The scorer / top-k ablation on the selection task (paper Table 4): 11 configurations x 3 seeds.
bench-selection: install
	$(PY) benchmarks/selection_ablation.py --jobs 2

demo: install
	$(PY) examples/demo.py

clean:
	rm -rf $(VENV) outputs .pytest_cache .ruff_cache
