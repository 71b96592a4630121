"""benchmarks/bench_models.py: schedule rescaling, peer sizes, one real point per model family, the report."""

from __future__ import annotations

import dataclasses
import math
import re

import bench_models as bm
import common
import model_point
import model_report
import model_zoo as zoo
import pytest

from pyramidion_hf.presets import get_preset

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
    assert result["train_batch"] == 2
    # the FLOP count grows with the batch and is at least the dense FFN work of one forward pass
    ffn_macs = 2 * 256 * setting.d_model * setting.ffn * setting.encoder_layers
    assert result["train_flops"] > 2 * 2 * ffn_macs
    assert result["params"] == zoo.count_parameters(name, setting, 256)
    assert result["train_mem_abs"] > max(100 << 20, result["train_mem"])  # torch's own footprint included


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
