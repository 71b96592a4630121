#!/usr/bin/env bash
# One prepared check for a lent GPU machine (H200, no network), run from the repository root, all of it inside
# a time budget (GPU_CHECK_BUDGET seconds, default 500; each step is cut to what is left of it):
#   bash benchmarks/gpu_check.sh              # on the GPU machine; files under $OUT (the device returns 8)
#   bash benchmarks/gpu_check.sh --cpu        # here: the same python parts on CPU, tiny (--quick) sizes
# Steps: environment (nvidia-smi, versions); install (offline: wheels carried in .whl/ first -- transformers
# >= 5.23 and what it needs where the image's is older -- then this checkout on PYTHONPATH); CUDA checks (bf16
# matmul, a tiny Pyramidion: forward/backward/generate in bf16 with sdpa, eager vs sdpa, cache vs no cache,
# generate() compiling the static-cache decode step by itself); the attention implementation and benchmark
# tests; the decode benchmark (dynamic vs static cache vs compiled decode step, bf16); bench_models.py in bf16
# in the paper's deep setting (DeepPyramidion, deep Blockwise, LED and PEGASUS-X at 8k, 32k and 64k tokens;
# generation batch 8 x 512 forced tokens at 8k); with the time left, the shallow setting (Table 2's rows
# beside the paper's numbers). bench_topk.py is CPU-only: not run here.
# Files: $OUT/gpu_check.log, $OUT/cuda_check.json, $OUT/decode_cache.md, $OUT/models.md, $OUT/table2.md and
# $OUT/results.tgz (every result folder: decode/, deep/, table2/ with their json and plots).
# The H200 image of 2026-12 has transformers 5.17 and huggingface_hub 1.33; what ran there (results/gpu_h200)
# carried, fetched here with `pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation
# cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .whl NAME==VERSION`:
# transformers==5.25.0 huggingface_hub==2.4.0 httpx2==2.16.2 httpcore2==2.16.2 truststore==0.10.5 idna==3.20
# anyio==4.16.0 h11==0.16.0 click==8.5.1 regex (cp312); ~16 MiB, passed to the device with carry [".whl"].
set -uo pipefail

MODE=cuda
if [[ "${1:-}" == "--cpu" ]]; then MODE=cpu; fi
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
OUT=${OUT:-$ROOT/gpu_check_out}
RESULTS=/tmp/gpu_check_results
BUDGET=${GPU_CHECK_BUDGET:-500}
rm -rf "$RESULTS"
mkdir -p "$OUT" "$RESULTS"
if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x "$ROOT/.venv/bin/python" && $MODE == cpu ]]; then PY=$ROOT/.venv/bin/python
else PY=python3; fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export MPLBACKEND=Agg
exec > >(tee -a "$OUT/gpu_check.log") 2>&1
START=$SECONDS
declare -A RC

left() { echo $((BUDGET - (SECONDS - START))); }
cap() { local limit=$1; ((limit > $(left))) && limit=$(left); echo "$limit"; }  # a step's limit, within the budget

step() {  # step NAME LIMIT_SECONDS COMMAND...: the limit is cut to what is left of the budget
  local name=$1 limit=$2
  shift 2
  limit=$(cap "$limit")
  if ((limit < 20)); then
    echo "=== [$((SECONDS - START)) s] $name: not run, ${limit} s left of the ${BUDGET} s budget"
    RC[$name]=skipped
    return
  fi
  echo "=== [$((SECONDS - START)) s] $name (limit ${limit} s)"
  timeout -k 10 "$limit" "$@"
  RC[$name]=$?
  echo "=== [$((SECONDS - START)) s] $name: exit ${RC[$name]}$([[ ${RC[$name]} == 124 ]] && echo ' (TIMEOUT)')"
}

fail() { echo "FATAL: $*"; exit 1; }

echo "=== gpu_check.sh mode=$MODE python=$PY root=$ROOT out=$OUT $(date -u)"
if [[ $MODE == cuda ]]; then
  nvidia-smi || fail "nvidia-smi failed: no NVIDIA driver on this machine"
fi

# ---- install (offline) ----------------------------------------------------------------------------------
install() {
  if compgen -G ".whl/*.whl" > /dev/null; then
    echo "installing carried wheels: $(ls .whl)"
    timeout 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl || return 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  fi
  export PYTHONPATH=$ROOT${PYTHONPATH:+:$PYTHONPATH}  # the package from this checkout, without installing it
  (cd /tmp && "$PY" - << 'EOF'
import importlib, sys
missing = []
for name in ("torch", "transformers", "matplotlib"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except ImportError as error:
        missing.append(f"{name} ({error})")
try:
    import pyramidion_hf  # noqa: F401
except Exception as error:  # noqa: BLE001
    missing.append(f"pyramidion_hf ({type(error).__name__}: {error})")
import transformers
major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
if (major, minor) < (5, 23):
    print(f"WARNING: transformers {transformers.__version__} < 5.23 (pyproject); carry a newer wheel in .whl/")
if missing:
    sys.exit("missing or broken: " + "; ".join(missing) + ". Carry wheels in .whl/ (see the device README).")
EOF
  )
}
install || fail "installation failed (see above); nothing was benchmarked"
echo "PYTHONPATH=${PYTHONPATH:-}"

# ---- CUDA / model checks ----------------------------------------------------------------------------------
cat > /tmp/pyramidion_cuda_check.py << 'EOF'
"""bf16 matmul, and a tiny Pyramidion on the device: forward/backward/generate, eager vs sdpa, cache."""
import json, math, sys, time
import torch
from pyramidion_hf import PyramidionConfig, PyramidionForConditionalGeneration

device = torch.device(sys.argv[1])
out_path = sys.argv[2]
report, failures = {"device": str(device)}, []

def check(name, ok, detail):
    report[name] = {"ok": bool(ok), "detail": detail}
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
    if not ok:
        failures.append(name)

if device.type == "cuda":
    props = torch.cuda.get_device_properties(0)
    report.update(name=props.name, memory_gib=props.total_memory / 2**30, cuda=torch.version.cuda,
                  bf16=torch.cuda.is_bf16_supported())
    check("bf16_supported", torch.cuda.is_bf16_supported(), props.name)
size = 8192 if device.type == "cuda" else 512
a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
ref = a @ b
err = ((a.bfloat16() @ b.bfloat16()).float() - ref).norm() / ref.norm()
check("bf16_matmul_error", err < 1e-2, f"relative error {err:.2e} at {size}^3")
a16, b16 = a.bfloat16(), b.bfloat16()
for _ in range(3):
    a16 @ b16
if device.type == "cuda":
    torch.cuda.synchronize()
tic = time.perf_counter()
for _ in range(10):
    a16 @ b16
if device.type == "cuda":
    torch.cuda.synchronize()
report["bf16_matmul_tflops"] = 10 * 2 * size**3 / (time.perf_counter() - tic) / 1e12
print(f"bf16 matmul {report['bf16_matmul_tflops']:.0f} TFLOP/s")

torch.manual_seed(0)
kw = dict(vocab_size=128, max_position_embeddings=256, encoder_lengths=[256, 64, 32], block_size=64,
          d_model=64, encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128,
          decoder_ffn_dim=128, decoder_layers=2, dropout=0.0)
ids = torch.randint(5, 128, (3, 256), device=device)
mask = torch.ones_like(ids)
mask[1, 200:] = 0
mask[2, 50:] = 0
labels = torch.randint(5, 128, (3, 12), device=device)
models = {}
for attn in ("eager", "sdpa"):
    torch.manual_seed(0)
    config = PyramidionConfig(**kw)
    config._attn_implementation = attn
    models[attn] = PyramidionForConditionalGeneration(config).to(device).eval()
with torch.no_grad():
    logits = {k: m(input_ids=ids, attention_mask=mask, labels=labels).logits for k, m in models.items()}
diff = (logits["eager"] - logits["sdpa"]).abs().max().item()
check("eager_vs_sdpa_fp32", diff < 1e-3, f"max |logit diff| {diff:.2e}")
with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
    low = models["sdpa"](input_ids=ids, attention_mask=mask, labels=labels).logits.float()
diff16 = (low - logits["eager"]).abs().max().item() / logits["eager"].abs().max().item()
check("sdpa_bf16_vs_fp32", diff16 < 0.1, f"relative max diff {diff16:.2e}")

model = models["sdpa"].train()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
losses = []
for _ in range(5):
    with torch.autocast(device.type, dtype=torch.bfloat16):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    finite = all(torch.isfinite(g).all() for g in grads)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    losses.append(loss.item())
check("bf16_train_steps", finite and losses[-1] < losses[0] and all(map(math.isfinite, losses)),
      f"losses {[round(x, 3) for x in losses]}, {len(grads)} finite gradients")
model.eval()
with torch.no_grad():
    cached = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=16, min_new_tokens=16)
    plain = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=16, min_new_tokens=16,
                           use_cache=False)
    single = model.generate(input_ids=ids[2:, :50], attention_mask=mask[2:, :50], max_new_tokens=16,
                            min_new_tokens=16)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        bf16 = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=16, min_new_tokens=16)
check("generate_cache_equals_no_cache", torch.equal(cached, plain), f"shape {tuple(cached.shape)}")
check("generate_padded_equals_alone", torch.equal(cached[2:], single), "document 3 alone vs in the batch")
check("generate_bf16_shape", bf16.shape == cached.shape, f"bf16 tokens equal fp32: {torch.equal(bf16, cached)}")
enc = model.get_encoder()(input_ids=ids, attention_mask=mask)
idx = enc.pooling_indices[-1]
valid = ((idx == -1) | ((idx >= 0) & (idx < mask.sum(1, keepdim=True)))).all().item()
check("pooling_indices_valid", valid and enc.pooled_mask.sum(1).tolist() == [32, 32, 32],
      f"pooled mask sums {enc.pooled_mask.sum(1).tolist()}")
if device.type == "cuda":  # on accelerators generate() compiles a static-cache decode step by itself
    with torch.no_grad():
        compiled = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=16, min_new_tokens=16,
                                  cache_implementation="static")
    check("generate_compiles_static_decode_step", hasattr(model, "_compiled_call") and torch.equal(compiled, cached),
          f"compiled call: {hasattr(model, '_compiled_call')}, tokens equal the dynamic cache's: "
          f"{torch.equal(compiled, cached)}")
json.dump({**report, "failures": failures}, open(out_path, "w"), indent=1)
sys.exit(1 if failures else 0)
EOF
step cuda_check 120 "$PY" /tmp/pyramidion_cuda_check.py "$MODE" "$OUT/cuda_check.json"

# ---- tests: attention implementations (sdpa / flex / flash_attention_2 against eager, the fullgraph decode
# step; flash runs only where the flash_attn package is) and the benchmark machinery, with this machine's
# torch / transformers
step tests 120 "$PY" -m pytest -q -p no:cacheprovider tests/modeling/test_attention_implementations.py \
  tests/benchmarks/test_bench_models.py

# ---- decoding: dynamic vs static cache vs compiled decode step (reduce-overhead = CUDA graphs) -------------
if [[ $MODE == cuda ]]; then
  step decode 100 "$PY" benchmarks/decode_cache.py --device cuda --dtype bf16 --tokens 256 --repeats 2 \
    --out "$RESULTS/decode"
else
  step decode 120 "$PY" benchmarks/decode_cache.py --quick --compile-backend eager --out "$RESULTS/decode"
fi

# ---- the model benchmarks (bf16) -------------------------------------------------------------------------
# --time-budget: no child starts that would end after it, so the tables are written within the step's limit.
if [[ $MODE == cuda ]]; then
  limit=$(cap 210)
  step bench_models "$limit" "$PY" benchmarks/bench_models.py --device cuda --dtype bf16 --setting deep \
    --lengths 8192,32768,65536 --models deep-pyramidion,blockwise,pegasus-x,led --gen-batch 8 --gen-tokens 512 \
    --gen-lengths 8192 --repeats 1 --steps 3 --gen-runs 1 --point-budget 60 --time-budget $((limit - 25)) \
    --out "$RESULTS/deep"
  limit=$(cap 150)
  step table2 "$limit" "$PY" benchmarks/bench_models.py --device cuda --dtype bf16 --setting shallow \
    --repeats 1 --steps 3 --gen-runs 1 --point-budget 30 --time-budget $((limit - 25)) --out "$RESULTS/table2"
else
  step bench_models 120 "$PY" benchmarks/bench_models.py --device cpu --quick --threads 1 --dtype bf16 \
    --models deep-pyramidion,blockwise,pegasus-x,led --out "$RESULTS/deep"
  step table2 120 "$PY" benchmarks/bench_models.py --device cpu --quick --threads 1 --dtype bf16 \
    --setting shallow --models table2-1,table2-4,table2-5,table2-7,table2-10,table2-13 --gen-tokens 2 \
    --train-batch 1 --out "$RESULTS/table2"
fi
echo "bench_topk.py: CPU-only (no --device option), not run on the GPU machine."

cp "$RESULTS"/decode/decode_cache*.md "$RESULTS"/deep/models.md "$RESULTS"/table2/table2.md "$OUT/" 2> /dev/null
tar -czf "$OUT/results.tgz" -C "$RESULTS" .
echo "=== summary after $((SECONDS - START)) s:"
status=0
for name in cuda_check tests decode bench_models table2; do
  echo "  $name: exit ${RC[$name]:-not run}"
  [[ ${RC[$name]:-1} == 0 ]] || status=1
done
[[ -f $OUT/models.md ]] && sed -n '/^## Headline/,/^## /p' "$OUT/models.md"
[[ -f $OUT/table2.md ]] && grep -E '^(\| #|- )' "$OUT/table2.md"
ls -la "$OUT"
tar -tzf "$OUT/results.tgz"
exit $status
