"""Warm start: converted BART / mBART / PEGASUS / LED checkpoints compute exactly what the source computes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import random_batch, run_without_package, tiny_config
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BartModel,
    LEDConfig,
    LEDForConditionalGeneration,
    MBartConfig,
    MBartForConditionalGeneration,
    PegasusConfig,
    PegasusForConditionalGeneration,
    T5Config,
    T5ForConditionalGeneration,
)
from transformers.models.pegasus.modeling_pegasus import PegasusSinusoidalPositionalEmbedding

from pyramidion_hf import PyramidionForConditionalGeneration, convert_checkpoint
from pyramidion_hf.modeling.modeling_pyramidion import pegasus_sinusoidal_embedding
from pyramidion_hf.training import convert_cli

VOCAB, SOURCE_LENGTH, INPUT_LENGTH = 64, 40, 12
FAMILIES = ("bart", "mbart", "pegasus", "led")
COMMON = dict(
    vocab_size=VOCAB,
    d_model=16,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=2,
    decoder_attention_heads=2,
    encoder_ffn_dim=32,
    decoder_ffn_dim=32,
    dropout=0.0,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
    decoder_start_token_id=2,
    init_std=0.3,  # outputs that depend on the input (random weights at 0.02 give near-constant logits)
)


def tiny_source(model_type: str, seed: int = 0, **overrides):
    """A tiny randomly initialised source model of `model_type` with a random final_logits_bias."""
    torch.manual_seed(seed)
    kwargs = {**COMMON, **overrides}
    if model_type == "led":  # attention window 32: inputs of <= 16 tokens see each other (full attention)
        config = LEDConfig(
            max_encoder_position_embeddings=64,
            max_decoder_position_embeddings=SOURCE_LENGTH,
            attention_window=32,
            **kwargs,
        )
        model = LEDForConditionalGeneration(config)
    else:
        config_class, model_class = {
            "bart": (BartConfig, BartForConditionalGeneration),
            "mbart": (MBartConfig, MBartForConditionalGeneration),
            "pegasus": (PegasusConfig, PegasusForConditionalGeneration),
        }[model_type]
        kwargs.setdefault("scale_embedding", True)
        model = model_class(config_class(max_position_embeddings=SOURCE_LENGTH, **kwargs))
    with torch.no_grad():
        model.final_logits_bias.normal_()
    return model.eval()


def padded_batch(seed: int = 0) -> dict[str, torch.Tensor]:
    """Right-padded inputs (3, 12) and decoder inputs (3, 7)."""
    ids, mask = random_batch([INPUT_LENGTH, 8, 5], VOCAB, seed=seed)
    decoder = torch.randint(4, VOCAB, (3, 7), generator=torch.Generator().manual_seed(seed))
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder}


def exact_conversion(source, **overrides) -> PyramidionForConditionalGeneration:
    """Converted with encoder_lengths all equal to the input length and full attention."""
    return convert_checkpoint(source, encoder_lengths=[INPUT_LENGTH] * 2, block_size=None, **overrides).eval()


def assert_same_logits(source, converted, batch):
    with torch.no_grad():
        expected = source(**batch).logits
        actual = converted(**batch).logits
    assert (expected - actual).abs().max().item() <= 1e-4


@pytest.mark.parametrize("model_type", FAMILIES)
def test_logits_match_the_source(model_type):
    source = tiny_source(model_type)
    converted = exact_conversion(source, max_position_embeddings=INPUT_LENGTH)
    assert converted.config.pooling_layers == []
    assert_same_logits(source, converted, padded_batch())


@pytest.mark.parametrize("model_type", FAMILIES)
def test_longer_converted_model_matches_on_inputs_the_source_reads(model_type):
    """Positions extended to 4x the source length (pooling layers of k = input length are the identity)."""
    source = tiny_source(model_type)
    converted = exact_conversion(source, max_position_embeddings=4 * 64)
    assert converted.config.max_position_embeddings == 256
    assert_same_logits(source, converted, padded_batch(seed=1))


def test_untied_head_and_unscaled_embeddings_match():
    source = tiny_source("bart", tie_word_embeddings=False, scale_embedding=False, activation_function="relu")
    assert source.lm_head.weight.data_ptr() != source.model.shared.weight.data_ptr()
    converted = exact_conversion(source)
    assert converted.lm_head.weight.data_ptr() != converted.model.encoder.embed_tokens.weight.data_ptr()
    assert_same_logits(source, converted, padded_batch())


@pytest.mark.parametrize("model_type", FAMILIES)
def test_greedy_and_beam_generation_match(model_type):
    source = tiny_source(model_type)
    converted = exact_conversion(source)
    batch = padded_batch()
    del batch["decoder_input_ids"]
    for options in ({"num_beams": 1}, {"num_beams": 3, "length_penalty": 0.5}):
        generate = dict(max_new_tokens=8, min_new_tokens=3, do_sample=False, **options)
        with torch.no_grad():
            expected = source.generate(**batch, **generate)
            actual = converted.generate(**batch, **generate)
        assert actual.tolist() == expected.tolist()


def test_learned_positions_are_tiled_without_bart_offset():
    bart, led = tiny_source("bart"), tiny_source("led")
    table = bart.model.encoder.embed_positions.weight[2:]
    converted = convert_checkpoint(bart, max_position_embeddings=100)
    positions = converted.model.encoder.embed_positions.weight
    assert torch.equal(positions[:SOURCE_LENGTH], table)
    assert torch.equal(positions[SOURCE_LENGTH : 2 * SOURCE_LENGTH], table)
    assert torch.equal(positions[80:], table[:20])
    assert torch.equal(
        converted.model.decoder.embed_positions.weight, bart.model.decoder.embed_positions.weight[2:]
    )
    led_converted = convert_checkpoint(led)
    assert torch.equal(
        led_converted.model.encoder.embed_positions.weight, led.led.encoder.embed_positions.weight
    )


@pytest.mark.parametrize("dim", [16, 15])
def test_pegasus_sinusoid_is_transformers_formula(dim):
    reference = PegasusSinusoidalPositionalEmbedding(50, dim)
    expected = reference.create_weight()
    actual = pegasus_sinusoidal_embedding(torch.arange(50), dim)
    assert actual.shape == expected.shape
    assert (actual - expected).abs().max().item() < 1e-5


def test_config_special_tokens_and_generation_config_are_carried():
    source = tiny_source("mbart")
    gen = source.generation_config
    gen.num_beams, gen.length_penalty, gen.no_repeat_ngram_size = 4, 2.0, 3
    gen.min_length, gen.max_length, gen.forced_bos_token_id = 5, 20, 7
    converted = convert_checkpoint(source, max_position_embeddings=80)
    for name in ("num_beams", "length_penalty", "no_repeat_ngram_size", "min_length", "max_length"):
        assert getattr(converted.generation_config, name) == getattr(gen, name)
    assert converted.generation_config.forced_bos_token_id == 7
    config = converted.config
    assert (config.pad_token_id, config.bos_token_id, config.eos_token_id) == (1, 0, 2)
    assert config.decoder_start_token_id == 2 and config.normalize_before and config.add_final_logits_bias
    assert config.converted_from == {
        "model": None,
        "model_type": "mbart",
        "architecture": "MBartForConditionalGeneration",
        "max_position_embeddings": SOURCE_LENGTH,
    }


def test_led_global_attention_is_dropped_with_a_log_line(caplog):
    with caplog.at_level("WARNING", logger="pyramidion_hf.training.convert"):
        convert_checkpoint(tiny_source("led"))
    assert "global-attention" in caplog.text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: T5ForConditionalGeneration(T5Config(vocab_size=VOCAB, d_model=16, num_layers=1)), "'t5'"),
        (lambda: BartModel(BartConfig(**COMMON)), "BartModel"),
        (lambda: tiny_source("bart", encoder_layerdrop=0.1), "encoder_layerdrop"),
    ],
)
def test_unsupported_sources_are_clear_errors(make, message):
    with pytest.raises(ValueError, match=message) as error:
        convert_checkpoint(make())
    assert "BartForConditionalGeneration" in str(error.value) or "LayerDrop" in str(error.value)


def test_unrepresentable_overrides_are_clear_errors():
    source = tiny_source("bart")
    with pytest.raises(ValueError, match="one entry per encoder layer"):
        convert_checkpoint(source, encoder_lengths=[40, 20, 10])
    with pytest.raises(ValueError, match="d_model"):
        convert_checkpoint(source, d_model=32)


REMOTE_CHILD = textwrap.dedent(
    """
    import json, sys
    sys.modules["pyramidion_hf"] = None
    import torch
    from transformers import AutoModelForSeq2SeqLM
    folder = sys.argv[1]
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
    inputs = torch.load(folder + "/inputs.pt")
    with torch.no_grad():
        logits = model(**inputs).logits
    out = model.generate(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                         max_new_tokens=5, num_beams=2)
    print(json.dumps({"logits": logits.flatten().tolist(), "generated": out.tolist()}))
    """
)


@pytest.mark.parametrize("model_type", ["bart", "pegasus"])
def test_pooled_conversion_saves_reloads_trains_and_generates(model_type, tmp_path):
    source = tiny_source(model_type)
    converted = convert_checkpoint(source, max_position_embeddings=64, encoder_lengths=[32, 8], block_size=16)
    assert converted.config.pooling_layers == [0, 1]
    folder = tmp_path / "converted"
    converted.save_pretrained(folder)
    ids, mask = random_batch([64, 40, 9], VOCAB)
    batch = {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": ids[:, :6]}
    torch.save(batch, folder / "inputs.pt")
    converted.eval()
    reloaded = PyramidionForConditionalGeneration.from_pretrained(folder).eval()
    assert reloaded.config.converted_from["model_type"] == model_type
    with torch.no_grad():
        expected = converted(**batch).logits
        assert torch.equal(reloaded(**batch).logits, expected)
    generate = dict(max_new_tokens=5, num_beams=2)
    generated = converted.generate(input_ids=ids, attention_mask=mask, **generate)

    result = run_without_package(REMOTE_CHILD, str(folder), cwd=tmp_path)
    assert torch.allclose(torch.tensor(result["logits"]), expected.flatten(), atol=1e-5)
    assert result["generated"] == generated.tolist()

    reloaded.train()
    optimizer = torch.optim.SGD(reloaded.parameters(), lr=0.1)
    loss = reloaded(input_ids=ids, attention_mask=mask, labels=ids[:, :6].contiguous()).loss
    loss.backward()
    scorer = reloaded.model.encoder.pooling["0"].score_proj.weight
    assert torch.isfinite(loss) and scorer.grad is not None and scorer.grad.abs().sum() > 0
    optimizer.step()


def save_bart_folder(path, tokenizer):
    """A saved tiny BART source folder with the test tokenizer (the local stand-in for a Hub checkpoint)."""
    tiny_source("bart").save_pretrained(path)
    tokenizer.save_pretrained(path)


def test_cli_writes_model_and_tokenizer(tmp_path, tokenizer, capsys):
    source, out = tmp_path / "bart", tmp_path / "converted"
    save_bart_folder(source, tokenizer)
    argv = [str(source), str(out), "--max-length", "160", "--encoder-lengths", "160,40", "--block-size", "40"]
    assert convert_cli.main(argv) == 0
    assert "pooling after layers [1]" in capsys.readouterr().out
    model = PyramidionForConditionalGeneration.from_pretrained(out)
    assert model.config.encoder_lengths == [160, 40] and model.config.block_size == 40
    assert model.config.converted_from["model"] == str(source)
    saved = json.loads((out / "tokenizer_config.json").read_text())
    assert saved["model_max_length"] == 160


def test_cli_hub_name_reaches_from_pretrained_and_offline_is_a_clear_error(tmp_path, capsys, monkeypatch):
    from pyramidion_hf.training import convert

    asked = []
    real = convert.AutoConfig.from_pretrained
    monkeypatch.setattr(
        convert.AutoConfig, "from_pretrained", lambda name, **kw: asked.append(name) or real(name)
    )
    assert convert_cli.main(["facebook/bart-large-cnn-not-cached", str(tmp_path / "out")]) == 1
    assert asked == ["facebook/bart-large-cnn-not-cached"]
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(
        "pyramidion-convert: error: Cannot load 'facebook/bart-large-cnn-not-cached' from the Hub"
    )


@pytest.fixture(scope="module")
def converted_run(tmp_path_factory: pytest.TempPathFactory):
    """tiny BART -> pyramidion-convert (pooling 64 -> 16) -> examples/run_summarization.py (train, predict
    with generate) -> hub.export_repo; returns (converted folder, run folder, exported folder)."""
    from run_helpers import EXAMPLES, build_tokenizer, write_corpus
    from transformers import AutoTokenizer

    from pyramidion_hf.hub import export_repo

    root = tmp_path_factory.mktemp("warm")
    files = write_corpus(root / "data")
    tokenizer = AutoTokenizer.from_pretrained(build_tokenizer(root / "tokenizer", files["train"]))
    source, converted, run_dir = root / "bart", root / "converted", root / "run"
    tiny_source("bart", vocab_size=len(tokenizer), d_model=32, encoder_ffn_dim=64).save_pretrained(source)
    tokenizer.save_pretrained(source)
    argv = [
        str(source),
        str(converted),
        "--max-length",
        "64",
        "--encoder-lengths",
        "64,16",
        "--block-size",
        "16",
    ]
    assert convert_cli.main(argv) == 0
    command = [
        sys.executable, str(EXAMPLES / "run_summarization.py"), "--model_name_or_path", str(converted),
        "--train_file", str(files["train"]), "--validation_file", str(files["validation"]),
        "--test_file", str(files["test"]), "--output_dir", str(run_dir), "--do_train", "--do_predict",
        "--predict_with_generate", "--max_steps", "4", "--per_device_train_batch_size", "4",
        "--per_device_eval_batch_size", "4", "--max_target_length", "24", "--generation_max_length", "16",
        "--n_bootstrap", "100", "--use_cpu", "--report_to", "none", "--disable_tqdm", "true",
        "--dataloader_pin_memory", "false", "--save_strategy", "no",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    exported = export_repo(run_dir, root / "export")
    return converted, run_dir, exported


def test_converted_model_fine_tunes_generates_and_exports(converted_run):
    converted, run_dir, exported = converted_run
    results = json.loads((run_dir / "all_results.json").read_text())
    assert results["train_steps"] == 4 and math.isfinite(results["train_loss"])
    assert results["predict_samples"] == 5 and "predict_rouge1" in results
    assert len((run_dir / "generated_predictions.jsonl").read_text().splitlines()) == 5
    config = json.loads((exported / "config.json").read_text())
    assert config["converted_from"]["model_type"] == "bart"
    assert config["converted_from"]["model"].endswith("bart")
    assert config["encoder_position_embeddings"] == "learned" and config["add_final_logits_bias"]
    model = PyramidionForConditionalGeneration.from_pretrained(exported).eval()
    ids, mask = random_batch([30, 12], model.config.vocab_size)
    assert model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4).shape[0] == 2


def test_exported_card_says_what_was_converted(converted_run):
    """A local source is named as a local checkpoint (no `base_model`: it is no Hub id)."""
    _, _, exported = converted_run
    card = (exported / "README.md").read_text()
    front_matter = card.split("---")[1]
    assert "base_model:" not in front_matter
    assert "converted from" in card.lower() and "(a local checkpoint)" in card
    assert "`BartForConditionalGeneration`" in card and "with `pyramidion-convert`" in card


def test_card_of_a_model_converted_from_the_hub_names_its_base_model():
    from pyramidion_hf.hub import render_model_card

    config = tiny_config()
    config.converted_from = {
        "model": "facebook/bart-large-cnn",
        "model_type": "bart",
        "architecture": "BartForConditionalGeneration",
        "max_position_embeddings": 1024,
    }
    card = render_model_card(config)
    front_matter = card.split("---")[1]
    assert "base_model: facebook/bart-large-cnn" in front_matter
    assert "Converted from [facebook/bart-large-cnn](https://huggingface.co/facebook/bart-large-cnn)" in card
    assert "trainable pooling was inserted (encoder output lengths 64 → 16)" in card
