"""benchmarks/bench_models.py: schedule rescaling, peer sizes, one real point per model family, the report."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import bench_models as bm
import common
import model_estimate
import model_point
import model_report
import model_zoo as zoo
import paper_table2
import pytest

from pyramidion_hf.presets import get_preset, list_presets

TINY = dataclasses.replace(zoo.tiny(zoo.SETTINGS["shallow"]), vocab=200)


def test_rescale_schedule_keeps_reduction_ratios():
    deep = get_preset("deep-pyramidion")
    for n, expected in (
        (16384, [16384, 16384, 4096, 1024, 1024, 1024]),
        (2048, [2048, 2048, 512, 128, 128, 128]),
        (65536, [65536, 65536, 16384, 4096, 4096, 4096]),
    ):
        scaled = zoo.rescale_schedule(deep, n)
        assert scaled.max_position_embeddings == n
        assert scaled.encoder_lengths == expected
        assert scaled.block_size == 512
        assert scaled.pooling_layers == deep.pooling_layers == [2, 3]
    assert deep.encoder_lengths == [8192, 8192, 2048, 512, 512, 512]  # the original is not modified
    funnel = zoo.rescale_schedule(get_preset("funnel"), 2048)
    assert funnel.encoder_lengths == [128, 128] and funnel.funnel_upsample
    small = zoo.rescale_schedule(get_preset("transpooler"), 256, block_size=128)
    assert small.encoder_lengths == [256, 16] and small.block_size == 128
    assert zoo.rescale_schedule(get_preset("blockwise"), 256).block_size == 256  # a block never exceeds n
    assert zoo.rescale_schedule(get_preset("blockwise"), 4096, block_size=None).block_size is None
    with pytest.raises(ValueError, match="must divide"):
        zoo.rescale_schedule(get_preset("blockwise"), 3000)
    with pytest.raises(ValueError, match="positive int"):
        zoo.rescale_schedule(get_preset("blockwise"), 0)


def test_our_config_uses_the_setting_sizes():
    config = zoo.our_config(zoo.MODELS["vanilla"], zoo.SETTINGS["deep"], 16384)
    assert (config.d_model, config.encoder_ffn_dim, config.decoder_layers) == (768, 3072, 6)
    assert config.encoder_lengths == [16384] * 6 and config.block_size is None
    shallow = zoo.our_config(zoo.MODELS["pyramidion"], zoo.SETTINGS["shallow"], 16384)
    assert shallow.encoder_lengths == [16384, 8192, 4096] and shallow.d_model == 512


def _position_parameters(name: str, setting: zoo.Setting, n: int) -> int:
    """Parameters in learned position tables (LED's and BART's grow with n; ours are sinusoidal)."""
    import torch

    with torch.device("meta"):
        model = zoo.build_model(name, setting, n)
    return sum(p.numel() for key, p in model.named_parameters() if "embed_positions" in key)


@pytest.mark.parametrize("setting", ["deep", "shallow"])
def test_peer_parameter_counts_match_ours(setting):
    s = zoo.SETTINGS[setting]
    ours = zoo.count_parameters("blockwise", s, 8192)
    pooled = zoo.count_parameters("deep-pyramidion" if setting == "deep" else "transpooler", s, 8192)
    assert abs(pooled / ours - 1) < 0.01  # pooling adds only the scorers
    for peer in ("led", "longt5", "pegasus-x", "bart"):
        count = zoo.count_parameters(peer, s, 8192)
        core = count - _position_parameters(peer, s, 8192)
        assert abs(core / ours - 1) < 0.1, (peer, core, ours)
        if setting == "deep":  # at 124M the 8k position tables of LED / BART stay within 15%
            assert abs(count / ours - 1) < 0.15, (peer, count, ours)
    assert _position_parameters("bart", s, 8192) == 2 * (8192 + 2) * s.d_model  # encoder and decoder tables
    assert (118e6 < ours < 130e6) if setting == "deep" else (29e6 < ours < 34e6)  # Tables 3 / 5: 124M / 32M


def test_flop_count_includes_attention():
    """Full attention costs more FLOPs than blocks of 128 (torch does not count CPU fused SDPA kernels)."""
    flops = {}
    for name in ("vanilla", "blockwise"):
        opts = {
            "name": name, "setting": dataclasses.asdict(TINY), "n": 512, "device": "cpu", "dtype": "fp32",
            "train_batch": 1, "gen_batch": 1, "target": 4, "gen_tokens": 1, "steps": 1, "gen_runs": 1,
            "warmup": 0, "count_flops": True, "generate": False, "attn": "sdpa", "seed": 0, "threads": 1,
        }  # fmt: skip
        flops[name] = model_point.run_point(opts)["train_flops"]
    # encoder attention QK^T and AV, forward (x1) + backward (x2), 2 FLOPs per MAC, 2 layers
    extra = 3 * 2 * 2 * 512 * (512 - 128) * TINY.d_model * TINY.encoder_layers
    assert flops["vanilla"] - flops["blockwise"] == pytest.approx(extra, rel=0.05)


@pytest.mark.parametrize("name", ["deep-pyramidion", "led", "longt5", "pegasus-x", "bart"])
def test_one_point_per_family_end_to_end(name):
    setting = (
        TINY if name != "deep-pyramidion" else dataclasses.replace(zoo.tiny(zoo.SETTINGS["deep"]), vocab=200)
    )
    opts = {
        "name": name, "setting": dataclasses.asdict(setting), "n": 256, "device": "cpu", "dtype": "fp32",
        "train_batch": 2, "gen_batch": 2, "target": 8, "gen_tokens": 4, "steps": 2, "gen_runs": 1,
        "warmup": 0, "count_flops": True, "generate": True, "attn": "sdpa", "seed": 0, "threads": 1,
    }  # fmt: skip
    saved: list[dict] = []
    result = model_point.run_point(opts, checkpoint=lambda partial: saved.append(dict(partial)))
    assert len(saved) == 1 and saved[0]["train_s"] == result["train_s"] and "train_flops" not in saved[0]
    assert len(result["train_s"]) == 2 and all(math.isfinite(t) and t > 0 for t in result["train_s"])
    assert len(result["gen_s"]) == 1 and math.isfinite(result["gen_s"][0]) and result["gen_s"][0] > 0
    assert result["gen_warmup_tokens"] == 4 and result["gen_warmup_s"] > 0  # at most 8 on CPU
    assert result["train_batch"] == 2
    # the FLOP count grows with the batch and is at least the dense FFN work of one forward pass
    ffn_macs = 2 * 256 * setting.d_model * setting.ffn * setting.encoder_layers
    assert result["train_flops"] > 2 * 2 * ffn_macs
    assert result["params"] == zoo.count_parameters(name, setting, 256)
    assert result["train_mem_abs"] > max(100 << 20, result["train_mem"])  # torch's own footprint included


def test_generation_warmup_is_full_length_on_cuda_only():
    """CUDA builds a cuDNN attention plan per new key length on first use: its warm-up covers every length."""
    assert model_point.warmup_generation_tokens("cuda", 512) == 512
    assert model_point.warmup_generation_tokens("cpu", 512) == 8
    assert model_point.warmup_generation_tokens("cpu", 4) == 4


def test_memory_estimate_scales_with_attention_pattern():
    s = zoo.SETTINGS["deep"]
    est = {
        name: [
            zoo.estimate_memory(name, s, n, 1, 256, 4, zoo.count_parameters(name, s, 8192))
            for n in (8192, 32768)
        ]
        for name in ("blockwise", "deep-pyramidion", "bart")
    }
    assert est["deep-pyramidion"][0] < est["blockwise"][0] < est["bart"][0]
    growth = {name: b / a for name, (a, b) in est.items()}
    assert growth["bart"] > 8 and 2 < growth["blockwise"] < 4.5  # quadratic vs linear in n


def _points() -> list[dict]:
    base = {"setting": "deep", "n": 8192, "status": "ok", "params": 124e6, "train_batch": 1, "attn": "sdpa"}
    values = {
        "blockwise": (4.0, 2.0, 8 << 30),
        "deep-pyramidion": (2.0, 0.5, 2 << 30),
        "led": (6.0, 3.0, 16 << 30),
        "pegasus-x": (3.0, 1.0, 4 << 30),
    }
    points = [
        {**base, "model": m, "train_s": t, "train_s_per_sample": t, "gen_s": g, "train_mem": mem,
         "train_flops": 1e12}
        for m, (t, g, mem) in values.items()
    ]  # fmt: skip
    points.append({**base, "n": 65536, "model": "deep-pyramidion", "status": "ok", "train_s_per_sample": 9.0})
    points.append(
        {
            **base,
            "n": 65536,
            "model": "led",
            "status": "skipped",
            "reason": "estimated 200 GiB > limit 100 GiB",
        }
    )
    return points


def test_markdown_table_ratio_columns():
    table = model_report.markdown_table(_points(), "deep")
    rows = {line.split(" | ")[1]: line.split(" | ") for line in table.splitlines()[2:] if "| 8192 |" in line}
    pyr = rows["DeepPyramidion"]
    header = table.splitlines()[0].split(" | ")
    col = {name.strip(" |"): i for i, name in enumerate(header)}
    assert pyr[col["vs Blockwise"]] == "2.00x" and pyr[col["vs LED"]] == "3.00x"
    assert pyr[col["gen vs Blockwise"]] == "4.00x" and pyr[col["gen vs LED"]] == "6.00x"
    assert pyr[col["mem vs LED"]] == "8.00x" and pyr[col["train mem MiB"]] == "2048"
    assert rows["Blockwise"][col["vs Blockwise"]] == "1.00x"
    assert "**skipped**: estimated 200 GiB > limit 100 GiB" in table
    lines = model_report.headline(_points())
    text = "\n".join(lines)
    assert "vs Blockwise | 2.00x | 4.00x | 4.00x" in text
    assert "vs LED (window 512) | 3.00x | 6.00x | 8.00x" in text
    assert "vs PEGASUS-X | 1.50x | 2.00x | 2.00x" in text
    assert "DeepPyramidion at n=65536: fits" in text and "LED (window 512) at n=65536: does not fit" in text


def _plan(**overrides) -> bm.Plan:
    kwargs = dict(
        models=["blockwise", "bart"], settings=[TINY], lengths=[256], device="cpu", dtype="fp32",
        train_batch=1, gen_batch=1, target=8, gen_tokens=2, gen_lengths=None, repeats=2, steps=1, gen_runs=1,
        warmup=0,
        point_budget=60, time_budget=float("inf"), mem_limit=8 * common.GIB, env_name="default", threads=1,
        attn="sdpa",
    )  # fmt: skip
    kwargs.update(overrides)
    return bm.Plan(**kwargs)


def test_estimates_skip_points_with_a_reason():
    results = bm.run(_plan(models=["blockwise"], mem_limit=1024.0, lengths=[256, 512]), log=lambda _: None)
    first, second = sorted(results["points"], key=lambda p: p["n"])
    assert first["status"] == second["status"] == "skipped"
    assert "GiB > limit 0.0 GiB" in first["reason"] and second["reason"] == "skipped at n=256"
    prev = {"n": 1024, "train_batch": 2, "train_mem": 100.0, "build_s": 1.0, "train_phase_s": 10.0}
    assert bm.predict(prev, 4096, 2, "train_phase_s") == 160.0
    assert bm.predict(prev, 4096, 1, "train_mem", batch=1) == 200.0
    assert bm.predict(None, 4096, 1, "train_mem") is None
    gen = {"n": 512, "train_batch": 2, "build_s": 1.0, "train_phase_s": 5.0, "gen_phase_s": 3.0}
    assert bm.predict_wall([gen, prev], 4096, 1, 2, generate=False) == 1.0 + 40.0
    assert bm.predict_wall([gen, prev], 4096, 1, 2, generate=True) == 1.0 + 40.0 + 24.0
    assert bm.predict_wall([], 4096, 1, 2, generate=True) is None
    quad = [{"n": 1024, "train_batch": 1, "t": 1.0}, {"n": 2048, "train_batch": 2, "t": 8.0}]
    assert bm.fitted_exponent(quad, "t", 1) == pytest.approx(2.0)  # per sample: 1 s -> 4 s
    assert bm.fitted_exponent(quad[:1], "t", 2) == 2 and bm.fitted_exponent(quad[::-1][:1], "t", 1) == 1
    flat = [{"n": 1024, "train_batch": 1, "t": 1.0}, {"n": 4096, "train_batch": 1, "t": 1.5}]
    assert bm.fitted_exponent(flat, "t", 2) == 1.0  # never below linear


@pytest.mark.slow
def test_child_processes_round_robin_and_failures_recorded(tmp_path):
    log: list[str] = []
    results = bm.run(_plan(), log=log.append)
    order = [re.match(r"\[rep (\d+)/2 \d+/2\] .* (\S+) n=256:", line).groups() for line in log]
    assert order == [("1", "blockwise"), ("1", "bart"), ("2", "blockwise"), ("2", "bart")], log
    for point in results["points"]:
        assert point["status"] == "ok" and point["repetitions"] == 2 and point["timed_steps"] == 2
        assert point["train_flops"] > 0 and point["gen_s"] > 0
    timed_out = bm.run(_plan(models=["blockwise"], repeats=1, point_budget=0.5), log=lambda _: None)
    point = timed_out["points"][0]
    assert point["status"] == "failed" and "timeout" in point["reason"]


# ---- dtype, GEMM ceiling, Table 2 (issues 13 and 17) ------------------------------------------------------


def test_bf16_reaches_the_child_and_generates_with_bf16_weights(monkeypatch):
    plan = _plan(dtype="bf16")
    opts = bm.point_opts(plan, TINY, {"model": "blockwise", "n": 256, "train_batch": 1}, 0)
    assert opts["dtype"] == "bf16"
    seen: list = []
    original = zoo.build_model

    def spy(*args, **kwargs):
        model = original(*args, **kwargs)
        generate = model.generate
        model.generate = lambda **kw: (seen.append(next(model.parameters()).dtype), generate(**kw))[1]
        return model

    monkeypatch.setattr(model_point, "build_model", spy)
    opts.update(gen_tokens=2, target=4, count_flops=False, generate=True)
    result = model_point.run_point(opts)
    import torch

    assert set(seen) == {torch.bfloat16} and result["dtype"] == "bf16" and result["gemm_flops_per_s"] > 0


def test_gemm_rate_is_measured():
    import torch

    assert model_point.gemm_rate("fp32", torch.device("cpu"), TINY.d_model, TINY.ffn, runs=1) > 1e8


def _summarized(train_s: float, flops: float, gemm: float) -> dict:
    run = {"train_s": [train_s], "train_batch": 1, "train_mem": 1, "train_mem_abs": 2, "attn": "sdpa",
           "dtype": "bf16", "gemm_flops_per_s": gemm}  # fmt: skip
    point = {"setting": "deep", "model": "blockwise", "n": 8192, "params": 1e6, "status": "ok",
             "train_flops": flops, "runs": [run]}  # fmt: skip
    return bm.summarize(point)


def test_ceiling_columns_come_from_the_measured_numbers():
    p = _summarized(train_s=4.0, flops=2e12, gemm=1e12)  # ceiling 2 s of a 4 s step: 50%
    assert p["train_ceiling_s"] == 2.0 and p["ceiling_fraction"] == 0.5 and p["dtype"] == "bf16"
    table = model_report.markdown_table([p], "deep")
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    row = [c.strip() for c in table.splitlines()[2].strip("|").split("|")]
    cells = dict(zip(header, row, strict=True))
    assert (cells["GEMM GFLOP/s"], cells["ceiling s/step"], cells["of ceiling"]) == ("1000", "2.000", "50%")


def test_dtype_in_the_report_header_and_out_folders(tmp_path):
    results = {"points": [], "wall_s": 1.0, "environment": {"cpu": "x", "torch": "t", "transformers": "5",
                                                            "threads": 2}}  # fmt: skip
    text = model_report.table2_report(results, _plan(dtype="bf16"), "cmd")
    assert "**dtype bf16** (training: torch.autocast bfloat16" in text
    assert "**dtype fp32**" in model_report.report({**results, "points": _points()}, _plan(), "cmd")
    shallow, deep = [zoo.SETTINGS["shallow"]], [zoo.SETTINGS["deep"]]
    outs = {bm.default_out(s, d) for s in (shallow, deep) for d in ("fp32", "bf16")}
    assert {o.name for o in outs} == {"table2", "table2_bf16", "results", "bf16"}
    (tmp_path / "models_env.json").write_text('{"plan": {"dtype": "fp32"}}')
    bm.check_out_dtype(tmp_path, "fp32")
    with pytest.raises(ValueError, match="holds fp32 results"):
        bm.check_out_dtype(tmp_path, "bf16")


def test_shallow_plan_has_the_20_rows_of_table2():
    args = bm.parse_args(["--setting", "shallow"])
    plan = bm.build_plan(args)
    order, points = bm._new_points(plan)
    assert [name for _, name, _ in order[:3]] == ["table2-1", "table2-9", "table2-12"]  # 512 tokens first
    assert sorted(name for _, name, _ in order) == sorted(f"table2-{i}" for i in range(1, 21))
    assert {name: n for _, name, n in order}["table2-17"] == 8192 and len(points) == 20
    assert (plan.gen_batch, plan.gen_tokens) == (8, 512)
    assert [bm.train_batch_for(plan, f"table2-{i}", 0) for i in (1, 2, 3)] == [16, 4, 1]
    assert bm.build_plan(bm.parse_args(["--setting", "shallow", "--gen-tokens", "16"])).gen_tokens == 16
    quick = bm.build_plan(bm.parse_args(["--setting", "shallow", "--quick"]))
    assert sorted({n for _, _, n in bm._new_points(quick)[0]}) == [64, 256, 1024]


@pytest.mark.parametrize("number", range(1, 21))
def test_every_table2_row_builds_in_the_tiny_setting(number):
    name = f"table2-{number}"
    if name not in list_presets():
        pytest.skip(f"preset {name} is not registered yet")
    setting = dataclasses.replace(zoo.tiny(zoo.SETTINGS["shallow"]), vocab=200)
    n = zoo.MODELS[name].point_lengths(setting, [])[0]
    config = zoo.our_config(zoo.MODELS[name], setting, n)
    assert config.preset == name and config.max_position_embeddings == n == paper_table2.row(number).n // 8


def _table2_points() -> list[dict]:
    times = {1: (1.0, 2.0), 9: (3.0, 2.0), 4: (2.0, 4.0), 6: (1.0, 1.0)}
    return [
        {"setting": "shallow", "model": f"table2-{k}", "n": paper_table2.row(k).n, "status": "ok",
         "train_batch": 1, "train_s_per_sample": t, "gen_s": g, "ceiling_fraction": 0.25}
        for k, (t, g) in times.items()
    ]  # fmt: skip


def test_table2_ratios_against_the_blockwise_row_of_the_same_length():
    rows = {r["paper"].number: r for r in model_report.table2_rows(_table2_points())}
    assert list(rows) == [1, 4, 6, 9]
    assert rows[9]["train_ratio"] == 3.0 and rows[9]["reference"] == 1  # 512 tokens: Vanilla is Blockwise
    assert rows[9]["paper_train_ratio"] == pytest.approx(0.19 / 0.13)
    assert rows[9]["train_flag"] == "**differs**" and rows[9]["gen_flag"] == "ok"  # 1.00 vs 1.01
    assert rows[6]["train_ratio"] == 0.5 and rows[6]["paper_train_ratio"] == pytest.approx(0.54 / 0.31)
    assert rows[6]["gen_ratio"] == 0.25 and rows[4]["train_ratio"] == rows[4]["gen_ratio"] == 1.0
    assert rows[4]["train_flag"] == rows[1]["gen_flag"] == "ok"
    results = {"points": _table2_points(), "wall_s": 1.0,
               "environment": {"cpu": "x", "torch": "t", "transformers": "5", "threads": 2}}  # fmt: skip
    text = model_report.table2_report(results, _plan(), "cmd")
    line = next(x for x in text.splitlines() if x.startswith("| #6 "))
    assert "| 0.50 | 0.54 | 1.74 | **differs** |" in line  # ours beside the paper's
    assert "25%" in line and "differs for #6, #9" in text


def test_estimate_printout_from_a_stored_run():
    plan = bm.build_plan(bm.parse_args(["--setting", "shallow"]))
    order = [(s, name, n, bm.train_batch_for(plan, name, n)) for s, name, n in bm._new_points(plan)[0]]
    text = model_estimate.estimate_text(plan, order, model_estimate.REFERENCE)
    assert text.count("shallow table2-") == 20 and "expected total:" in text
    deep = bm.build_plan(bm.parse_args(["--setting", "deep", "--lengths", "8192", "--models", "blockwise"]))
    rates = model_estimate.fitted_rates(json.loads(model_estimate.REFERENCE.read_text()))
    fp32 = model_estimate.point_estimate(deep, deep.settings[0], "blockwise", 8192, 1, rates)
    assert 10 < fp32["step"] < 30  # the stored run measured 17.8 s
