"""Presets: every configuration of the paper's Tables 2, 3, 4, 7 and 8 by a stable name."""

from __future__ import annotations

import pytest
import torch

from pyramidion_hf import PyramidionConfig, PyramidionForConditionalGeneration
from pyramidion_hf.presets import describe_preset, get_preset, list_presets, preset_info

FROZEN_NAMES = [
    "blockwise",
    "deep-blockwise",
    "deep-pyramidion",
    "deep-pyramidion-early",
    "funnel",
    "power",
    "pyramidion",
    "transpooler",
    "vanilla",
    "table2-1",
    "table2-2",
    "table2-3",
    "table2-4",
    "table2-5",
    "table2-6",
    "table2-7",
    "table2-8",
    "table2-9",
    "table2-10",
    "table2-11",
    "table2-12",
    "table2-13",
    "table2-14",
    "table2-15",
    "table2-16",
    "table2-17",
    "table2-18",
    "table2-19",
    "table2-20",
    "table3-blockwise",
    "table3-deep-pyramidion",
    "table4-embedding",
    "table4-index",
    "table4-linear",
    "table4-max",
    "table4-mean",
    "table4-nonlinear",
    "table4-power",
    "table4-random",
    "table7-21",
    "table7-22",
    "table7-23",
    "table7-24",
    "table7-25",
    "table7-26",
    "table8-27",
    "table8-28",
    "table8-29",
    "table8-30",
    "table8-31",
    "table8-32",
]

# name: (max_position_embeddings, encoder_lengths, block_size, scorer, topk, encoder_attention, funnel)
# Lengths are per-layer *outputs* (DESIGN.md); the paper lists what each layer attends over (see presets.py).
SH, HARD = "successive_halving", "hard"
SPEC = {
    "table2-1": (512, [512, 512], None, "linear", SH, "dot", False),
    "table2-2": (2048, [2048, 2048], None, "linear", SH, "dot", False),
    "table2-3": (8192, [8192, 8192], None, "linear", SH, "dot", False),
    "table2-4": (2048, [2048, 2048], 512, "linear", SH, "dot", False),
    "table2-5": (8192, [8192, 8192], 512, "linear", SH, "dot", False),
    "table2-6": (2048, [2048, 512], 512, "linear", SH, "dot", False),
    "table2-7": (8192, [8192, 512], 512, "linear", SH, "dot", False),
    "table2-8": (8192, [8192, 2048], 512, "linear", SH, "dot", False),
    "table2-9": (512, [512, 512], 512, "linear", SH, "lsh", False),
    "table2-10": (2048, [2048, 2048], 512, "linear", SH, "lsh", False),
    "table2-11": (8192, [8192, 8192], 512, "linear", SH, "lsh", False),
    "table2-12": (512, [512, 512], 512, "linear", SH, "efficient", False),
    "table2-13": (2048, [2048, 2048], 512, "linear", SH, "efficient", False),
    "table2-14": (8192, [8192, 8192], 512, "linear", SH, "efficient", False),
    "table2-15": (2048, [1024, 512], 512, "power", HARD, "dot", False),
    "table2-16": (8192, [2048, 512], 512, "power", HARD, "dot", False),
    "table2-17": (8192, [4096, 2048], 512, "power", HARD, "dot", False),
    "table2-18": (2048, [512, 512], 512, "mean", SH, "dot", True),
    "table2-19": (8192, [512, 512], 512, "mean", SH, "dot", True),
    "table2-20": (8192, [2048, 2048], 512, "mean", SH, "dot", True),
    "table3-blockwise": (8192, [8192] * 6, 512, "linear", SH, "dot", False),
    "table3-deep-pyramidion": (8192, [8192, 8192, 2048, 512, 512, 512], 512, "linear", SH, "dot", False),
    "deep-pyramidion-early": (8192, [8192, 2048, 512, 512, 512, 512], 512, "linear", SH, "dot", False),
    **{
        f"table4-{s}": (2048, [2048, 512], 512, s, HARD if s == "power" else SH, "dot", False)
        for s in ("linear", "nonlinear", "random", "index", "embedding", "power", "mean", "max")
    },
    "table7-21": (8192, [2048, 512], 512, "linear", SH, "dot", False),
    "table7-22": (8192, [8192, 2048, 512], 512, "linear", SH, "dot", False),
    "table7-23": (8192, [8192, 2048, 512, 128], 512, "linear", SH, "dot", False),
    "table7-24": (8192, [8192, 4096, 2048], 512, "linear", SH, "dot", False),
    "table7-25": (8192, [8192, 2048], 512, "linear", SH, "dot", False),
    "table7-26": (8192, [8192, 8192, 2048], 512, "linear", SH, "dot", False),
    "table8-27": (2048, [2048, 2048], 128, "linear", SH, "dot", False),
    "table8-28": (2048, [2048, 2048], 512, "linear", SH, "dot", False),
    "table8-29": (2048, [2048, 2048], None, "linear", SH, "dot", False),
    "table8-30": (2048, [2048, 512], 128, "linear", SH, "dot", False),
    "table8-31": (2048, [2048, 512], 512, "linear", SH, "dot", False),
    "table8-32": (2048, [2048, 512], None, "linear", SH, "dot", False),
}
ALIASES = {
    "vanilla": "table2-3",
    "blockwise": "table2-5",
    "transpooler": "table2-7",
    "pyramidion": "table7-24",
    "deep-pyramidion": "table3-deep-pyramidion",
    "deep-blockwise": "table3-blockwise",
    "power": "table2-16",
    "funnel": "table2-19",
}
DEEP = {
    "table3-blockwise",
    "table3-deep-pyramidion",
    "deep-pyramidion",
    "deep-pyramidion-early",
    "deep-blockwise",
}


def test_names_are_frozen() -> None:
    assert list_presets() == sorted(FROZEN_NAMES)
    assert set(SPEC) | set(ALIASES) == set(FROZEN_NAMES)


@pytest.mark.parametrize("name", FROZEN_NAMES)
def test_every_preset_builds_the_papers_config(name: str) -> None:
    config = get_preset(name)
    assert isinstance(config, PyramidionConfig) and config.model_type == "pyramidion"
    max_pos, lengths, block, scorer, topk, attention, funnel = SPEC[ALIASES.get(name, name)]
    assert config.max_position_embeddings == max_pos
    assert list(config.encoder_lengths) == lengths
    assert config.encoder_layers == len(lengths)
    assert (config.block_size, config.scorer, config.topk) == (block, scorer, topk)
    assert (config.encoder_attention, config.funnel_upsample) == (attention, funnel)
    # Appendix C.1: LSH and Efficient baselines have two local heads; LSH buckets of 64 and four hashes
    assert config.local_attention_heads == (0 if attention == "dot" else 2)
    assert (config.lsh_bucket_size, config.lsh_num_hashes) == (64, 4)
    # Tables 5 and 6
    assert (config.vocab_size, config.dropout, config.activation_function) == (32000, 0.1, "relu")
    assert config.tie_word_embeddings is True and config.decoder_position_embeddings == "none"
    assert config.encoder_attention_heads == config.decoder_attention_heads == 8
    expected = (768, 3072, 6) if name in DEEP else (512, 2048, 2)
    assert (config.d_model, config.encoder_ffn_dim, config.decoder_layers) == expected
    assert config.decoder_ffn_dim == config.encoder_ffn_dim
    line = describe_preset(name)
    assert "\n" not in line and preset_info(name).source in line and len(line) > 30


def test_pooling_layers_follow_the_schedule() -> None:
    assert list(get_preset("deep-pyramidion").pooling_layers) == [2, 3]
    assert list(get_preset("deep-pyramidion-early").pooling_layers) == [1, 2]
    assert list(get_preset("table7-24").pooling_layers) == [1, 2]
    assert list(get_preset("table2-7").pooling_layers) == [1]
    assert list(get_preset("table2-16").pooling_layers) == [0, 1]
    assert list(get_preset("deep-blockwise").pooling_layers) == []


def test_aliases_equal_their_rows() -> None:
    for alias, row in ALIASES.items():
        assert get_preset(alias).to_dict() == get_preset(row).to_dict()
        assert preset_info(alias).source.startswith(preset_info(row).source)


def test_presets_are_fresh_objects() -> None:
    first = get_preset("deep-pyramidion")
    first.encoder_lengths.append(1)
    first.d_model = 8
    second = get_preset("deep-pyramidion")
    assert list(second.encoder_lengths) == [8192, 8192, 2048, 512, 512, 512] and second.d_model == 768


def test_overrides_apply_and_are_validated() -> None:
    config = get_preset(
        "transpooler",
        d_model=64,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        max_position_embeddings=1024,
        encoder_lengths=[1024, 128],
        block_size=128,
    )
    assert (config.d_model, config.max_position_embeddings, list(config.encoder_lengths)) == (
        64,
        1024,
        [1024, 128],
    )
    assert config.scorer == "linear" and config.vocab_size == 32000
    with pytest.raises(ValueError, match="d_model"):
        get_preset("transpooler", d_modle=64)
    with pytest.raises(ValueError):
        get_preset("transpooler", scorer="no-such-scorer")
    with pytest.raises(ValueError):
        get_preset("pyramidion", encoder_lengths=[8192, 16384])


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(ValueError, match="deep-pyramidion"):
        get_preset("deep-pyramidon")
    with pytest.raises(ValueError, match="table2-10"):
        get_preset("table2-10x")
    with pytest.raises(ValueError):
        describe_preset("table9-1")
    assert get_preset("Deep_Pyramidion").to_dict() == get_preset("deep-pyramidion").to_dict()


def test_config_round_trip(tmp_path) -> None:
    config = get_preset("funnel")
    config.save_pretrained(tmp_path)
    loaded = PyramidionConfig.from_pretrained(tmp_path)
    assert list(loaded.encoder_lengths) == [512, 512] and loaded.funnel_upsample is True
    assert loaded.scorer == "mean" and loaded.block_size == 512


def _num_parameters(config: PyramidionConfig) -> int:
    with torch.device("meta"):
        model = PyramidionForConditionalGeneration(config)
    return model.num_parameters()


def test_deep_models_have_124m_parameters() -> None:
    # Tables 3 and 6: 124M for both deep models (shared 32k embeddings, 6+6 layers, d=768).
    for name in ("deep-pyramidion", "deep-blockwise"):
        n = _num_parameters(get_preset(name))
        assert abs(n - 124e6) / 124e6 < 0.02, (name, n)


def test_shallow_models_have_32m_parameters() -> None:
    # Table 5: "Total parameters 32M" (rounded) for the 2+2, d=512 models.
    n = _num_parameters(get_preset("table2-6"))
    assert abs(n - 32e6) / 32e6 < 0.05, n


@pytest.mark.slow
def test_deep_pyramidion_trains_and_generates_on_8k_tokens() -> None:
    torch.manual_seed(0)
    config = get_preset("deep-pyramidion")
    model = PyramidionForConditionalGeneration(config)
    input_ids = torch.randint(5, config.vocab_size, (1, 8192))
    attention_mask = torch.ones_like(input_ids)
    labels = torch.randint(5, config.vocab_size, (1, 32))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)

    model.eval()
    with torch.no_grad():
        loss_before = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
    model.train()
    out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert torch.isfinite(out.loss)
    assert out.encoder_last_hidden_state.shape == (1, 512, 768)
    out.loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert all(g.abs().sum() > 0 for n, g in grads.items() if "encoder.layers.0." in n), (
        "no gradient at layer 0"
    )
    optimizer.step()
    model.eval()
    with torch.no_grad():
        loss_after = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        generated = model.generate(
            input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=4, num_beams=1, do_sample=False
        )
    assert loss_after < loss_before
    assert generated.shape[0] == 1 and 2 <= generated.shape[1] <= 5
