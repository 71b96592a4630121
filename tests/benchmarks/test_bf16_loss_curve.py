"""The bf16-vs-fp32 loss-curve benchmark in its quick mode: both dtypes train the same steps and the report
compares them."""

from __future__ import annotations

import math

import bf16_loss_curve


def test_quick_run_trains_both_dtypes_and_reports_them(tmp_path):
    record = bf16_loss_curve.main(["--quick", "--seeds", "1,2", "--out", str(tmp_path)])
    assert list(record["runs"]) == ["1", "2"]
    fp32, bf16 = record["runs"]["1"]["fp32"], record["runs"]["1"]["bf16"]
    assert fp32["dtype"] == "fp32" and bf16["dtype"] == "bf16"
    assert len(fp32["losses"]) == len(bf16["losses"]) == record["steps"]
    assert all(math.isfinite(x) for x in fp32["losses"] + bf16["losses"])
    assert fp32["losses"][0] != bf16["losses"][-1]
    assert abs(fp32["losses"][0] - bf16["losses"][0]) < 0.1 * fp32["losses"][0]  # same weights, same batch
    text = (tmp_path / "bf16_loss_curve_quick.md").read_text()
    assert "seed 2 bf16 - fp32" in text and "| bf16 |" in text
    assert (tmp_path / "bf16_loss_curve_quick.png").is_file()


def test_noise_and_windows():
    losses = [1.0, 1.2] * 20
    assert abs(bf16_loss_curve.noise(losses) - 0.8 / 9) < 1e-9  # residuals +-0.2 * 4/9 around 9-step means
    rows = bf16_loss_curve.windows(losses, [x + 0.5 for x in losses])
    assert [row["steps"] for row in rows] == ["1-20", "21-40"]
    assert all(abs(row["diff"] - 0.5) < 1e-12 for row in rows)
