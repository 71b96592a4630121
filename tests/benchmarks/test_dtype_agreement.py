"""dtype_agreement.py on a tiny saved model folder: both dtypes summarize, the comparison adds up."""

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
    assert record["papers"] == 3 and 0 <= record["identical"] <= 3
    assert all(len(record["summaries"][dtype]) == 3 for dtype in dtype_agreement.DTYPES)
    if record["identical"] == 3:  # identical summaries score 100 against each other
        assert record["rouge_bf16_vs_fp32"]["rouge1"] == 100.0
    saved = json.loads((tmp_path / "dtype_agreement.json").read_text())
    assert saved["identical"] == record["identical"]
    text = (tmp_path / "dtype_agreement.md").read_text()
    assert (
        f"Identical summaries: {record['identical']} of 3" in text and "| bf16 | the fp32 summaries |" in text
    )
