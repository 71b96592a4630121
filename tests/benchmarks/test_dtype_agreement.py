"""dtype_agreement.py on a tiny saved folder: fp32, bf16, autocast and the rounded-weights control summarize,
and the comparison adds up."""

from __future__ import annotations

import json

import dtype_agreement
from conftest import tiny_model


def test_both_dtypes_summarize_and_are_compared(tmp_path, tokenizer):
    model = tiny_model(seed=2)
    tokenizer.model_max_length = model.config.max_position_embeddings
    model.generation_config.max_new_tokens = 6
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    argv = ["--model", str(tmp_path / "model"), "--papers", "3", "--n-bootstrap", "5", "--out", str(tmp_path)]
    record = dtype_agreement.main(argv)
    summaries = record["summaries"]
    assert record["papers"] == 3 and set(summaries) == set(dtype_agreement.VARIANTS)
    assert all(len(texts) == 3 and all(texts) for texts in summaries.values())
    for name, count in record["identical_to_fp32"].items():
        assert count == sum(a == b for a, b in zip(summaries["fp32"], summaries[name], strict=True))
        if count == 3:  # identical summaries score 100 against each other
            assert record["rouge_vs_fp32"][name]["rouge1"] == 100.0
    assert set(record["identical_to_fp32"]) == {"bf16", dtype_agreement.AUTOCAST, dtype_agreement.ROUNDED}
    saved = json.loads((tmp_path / "dtype_agreement.json").read_text())
    assert saved["identical_to_fp32"] == record["identical_to_fp32"]
    text = (tmp_path / "dtype_agreement.md").read_text()
    bf16 = record["identical_to_fp32"]["bf16"]
    assert f"bf16: {bf16} of 3" in text and f"| bf16 | {bf16} | the fp32 summaries |" in text
