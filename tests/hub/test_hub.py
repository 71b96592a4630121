"""Hub export, model cards, push and CLI (pyramidion_hf.hub) on a tiny model and tokenizer built locally."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from huggingface_hub import ModelCard
from safetensors.torch import load_file

from pyramidion_hf.hub import (
    PushResult,
    check_repo,
    describe_variant,
    export_repo,
    main,
    normalize_metrics,
    push_repo,
    render_model_card,
    repo_files,
)
from pyramidion_hf.hub import export as hub_export
from pyramidion_hf.hub import push as hub_push
from pyramidion_hf.modeling.modeling_pyramidion import PyramidionForConditionalGeneration
from pyramidion_hf.training.tokenizer import train_tokenizer

REPO_ROOT = Path(__file__).resolve().parents[2]
MAX_NEW_TOKENS = 8
# Greedy, fixed length; special and non-printable tokens are suppressed (see `generation_kwargs`) so that a
# random tiny model neither stops at once nor emits bytes that all decode to U+FFFD: summaries then differ
# visibly whenever the generated ids differ.
GREEDY = {
    "max_new_tokens": MAX_NEW_TOKENS,
    "min_new_tokens": MAX_NEW_TOKENS,
    "do_sample": False,
    "num_beams": 1,
}
CORPUS = [
    "Long documents are summarized by pooling the most informative token representations.",
    "The encoder scores every token and a soft top-k operator keeps the best ones for the decoder.",
    "Successive halving pairs the best with the worst scored vectors and merges them round after round.",
    "Blockwise attention splits the document into blocks of equal size and attends inside each block.",
    "The decoder cross-attends to the pooled vectors only, which makes generation faster on long inputs.",
] * 4
# The first document is longer than the model's 64 positions (truncated), the second shorter (masked slots).
DOCS = [
    "Pooling keeps the informative tokens of long documents so that the decoder attends to fewer vectors. "
    * 2,
    "Blockwise attention and successive halving make the encoder cheap on scientific papers.",
]
METRICS = {
    "rouge1": 30.12, "rouge1_low": 28.0, "rouge1_high": 32.5,
    "rouge2": 8.1, "rouge2_low": 7.02, "rouge2_high": 9.3,
    "rougeL": 20.0, "rougeL_low": 19.0, "rougeL_high": 21.0,
    "rougeLsum": 25.25, "rougeLsum_low": 24.0, "rougeLsum_high": 26.5,
    "split": "test", "num_examples": 100, "n_bootstrap": 1000,
    "lead": {"rouge1": 28.0, "rouge2": 6.5, "rougeL": 17.0, "rougeLsum": 24.0},
}  # fmt: skip
TRAINING = {"train_examples": 100, "epochs": 3, "learning_rate": 3e-4, "hardware": "2 CPU cores"}


# Overrides of the conftest tiny config for the exported model: a 3-layer Pyramidion (64 -> 32 -> 16 vectors,
# blocks of 16) over the tokenizer trained here (320 tokens).
HUB_CONFIG = dict(
    vocab_size=320,
    d_model=32,
    encoder_lengths=[64, 32, 16],
    encoder_ffn_dim=64,
    decoder_ffn_dim=64,
    decoder_layers=1,
    max_target_positions=64,
    init_std=1.0,  # large random weights make the greedy output depend on the document
)


def hub_config(**overrides):
    """The conftest tiny config with HUB_CONFIG (then `overrides`) applied."""
    return tiny_config(**{**HUB_CONFIG, **overrides})


def generation_kwargs(tokenizer) -> dict:
    """GREEDY plus `suppress_tokens`: special tokens and tokens that do not decode to printable ASCII."""
    suppress = []
    for i in range(len(tokenizer)):
        text = tokenizer.decode([i])
        if i in tokenizer.all_special_ids or not text.strip() or not (text.isascii() and text.isprintable()):
            suppress.append(i)
    return dict(GREEDY, suppress_tokens=suppress)


def reference_summaries(model, tokenizer, docs=DOCS) -> list[str]:
    """Greedy summaries of `docs`, one document at a time, decoded without special tokens."""
    out = []
    for doc in docs:
        enc = tokenizer(
            doc, truncation=True, max_length=model.config.max_position_embeddings, return_tensors="pt"
        )
        with torch.no_grad():
            ids = model.generate(**enc, **generation_kwargs(tokenizer))
        out.append(tokenizer.decode(ids[0], skip_special_tokens=True))
    return out


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """(saved model + tokenizer folder, model, tokenizer, greedy reference summaries, generate kwargs)."""
    folder = tmp_path_factory.mktemp("tiny_model")
    tokenizer = train_tokenizer(CORPUS, vocab_size=320, min_frequency=1, model_max_length=64)
    torch.manual_seed(1)  # a seed whose random model summarizes the two documents differently
    model = PyramidionForConditionalGeneration(hub_config()).eval()
    model.generation_config.num_beams = 3  # a saved default that must reach the Hub repo
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    refs = reference_summaries(model, tokenizer)
    assert all(refs), f"the tiny model produced an empty summary, the comparison would be vacuous: {refs}"
    assert len(set(refs)) == len(refs), f"summaries do not depend on the document (change the seed): {refs}"
    return folder, model, tokenizer, refs, generation_kwargs(tokenizer)


@pytest.fixture(scope="module")
def exported(saved_model, tmp_path_factory):
    folder = saved_model[0]
    out = tmp_path_factory.mktemp("export") / "repo"
    return export_repo(folder, out, metrics=METRICS, training=TRAINING, dataset="aclsum", benchmarks_dir=None)


# ------------------------------------------------------------------------------------------------ export


def test_export_writes_complete_repo(saved_model, exported):
    model = saved_model[1]
    names = set(repo_files(exported))
    expected = {
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "handler.py",
        "requirements.txt",
        "README.md",
        "configuration_pyramidion.py",
        "modeling_pyramidion.py",
        "pipeline_summarization.py",
    }
    assert expected <= names, expected - names
    assert check_repo(exported) == []
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "pyramidion"
    assert config["auto_map"]["AutoConfig"] == "configuration_pyramidion.PyramidionConfig"
    assert (
        config["auto_map"]["AutoModelForSeq2SeqLM"]
        == "modeling_pyramidion.PyramidionForConditionalGeneration"
    )
    assert (
        config["custom_pipelines"]["summarization"]["impl"] == "pipeline_summarization.SummarizationPipeline"
    )
    # weights are the model's, in safetensors
    weights = load_file(exported / "model.safetensors")
    state = model.state_dict()
    assert weights, "empty safetensors file"
    for key, tensor in weights.items():
        torch.testing.assert_close(tensor, state[key], rtol=0, atol=0)
    # the tokenizer truncates to the model's input length
    assert json.loads((exported / "tokenizer_config.json").read_text())["model_max_length"] == 64
    assert json.loads((exported / "generation_config.json").read_text())["num_beams"] == 3
    assert (exported / "tokenizer.json").read_bytes() == (saved_model[0] / "tokenizer.json").read_bytes()


def test_exported_code_imports_only_torch_transformers_and_stdlib(exported):
    from transformers.dynamic_module_utils import get_imports

    py_files = sorted(exported.glob("*.py"))
    assert {p.name for p in py_files} >= {"handler.py", "modeling_pyramidion.py", "pipeline_summarization.py"}
    for path in py_files:
        third_party = set(get_imports(path)) - set(sys.stdlib_module_names)
        assert third_party <= {"torch", "transformers"}, (path.name, third_party)
    handler_imports = set()
    for node in ast.walk(ast.parse((exported / "handler.py").read_text())):
        if isinstance(node, ast.ImportFrom):
            handler_imports.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            handler_imports.update(a.name.split(".")[0] for a in node.names)
    assert handler_imports <= {"os", "typing", "torch", "transformers"}, handler_imports
    assert (exported / "requirements.txt").read_text().startswith("transformers>=5")


REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys
    sys.modules["pyramidion_hf"] = None  # as if pyramidion_hf were not installed
    try:
        import pyramidion_hf  # noqa: F401
        raise SystemExit("pyramidion_hf is still importable")
    except ImportError:
        pass
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline

    folder, docs, greedy = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
    auto = []
    for doc in docs:
        n_max = model.config.max_position_embeddings
        enc = tokenizer(doc, truncation=True, max_length=n_max, return_tensors="pt")
        with torch.no_grad():
            auto.append(tokenizer.decode(model.generate(**enc, **greedy)[0], skip_special_tokens=True))
        encoder_outputs = model.get_encoder()(**enc)  # the card's usage example
    pipe = pipeline("summarization", model=folder, trust_remote_code=True)
    piped = [out["summary_text"] for out in pipe(docs, **greedy)]
    spec = importlib.util.spec_from_file_location("endpoint_handler", f"{folder}/handler.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler = module.EndpointHandler(folder)
    one = [handler({"inputs": doc, "parameters": greedy}) for doc in docs]
    batch = handler({"inputs": docs, "parameters": greedy})
    print(json.dumps({
        "model_class": type(model).__module__ + "." + type(model).__name__,
        "pipeline_class": type(pipe).__module__ + "." + type(pipe).__name__,
        "auto": auto, "pipeline": piped, "handler_one": one, "handler_batch": batch,
        "pooling_shapes": [list(t.shape) for t in encoder_outputs.pooling_indices],
    }))
    """
)


def test_exported_repo_runs_without_pyramidion_hf(saved_model, exported, tmp_path):
    """AutoModel, pipeline and EndpointHandler load the folder as remote code and reproduce the summaries."""
    refs, gen_kwargs = saved_model[3], saved_model[4]
    script = tmp_path / "remote.py"
    script.write_text(REMOTE_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(
        HF_HOME=str(tmp_path / "hf_home"),
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        PYRAMIDION_DTYPE="fp32",  # the handler would pick bf16 on this CPU; the references are fp32
    )
    proc = subprocess.run(
        [sys.executable, str(script), str(exported), json.dumps(DOCS), json.dumps(gen_kwargs)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Do you wish to run the custom code" not in proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["model_class"].startswith("transformers_modules."), result["model_class"]
    assert result["model_class"].endswith("modeling_pyramidion.PyramidionForConditionalGeneration")
    assert result["pipeline_class"].endswith("pipeline_summarization.SummarizationPipeline")
    assert result["auto"] == refs
    assert result["pipeline"] == refs
    assert result["handler_one"] == [[{"summary_text": r}] for r in refs]
    assert result["handler_batch"] == [{"summary_text": r} for r in refs]
    assert result["pooling_shapes"] == [[1, 32], [1, 16]]


def test_export_rejects_incomplete_or_foreign_folders(saved_model, tmp_path):
    folder = saved_model[0]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="missing") as err:
        export_repo(empty, tmp_path / "out")
    message = str(err.value)
    assert "config.json" in message and "weights" in message and "tokenizer" in message

    no_tok = tmp_path / "no_tokenizer"
    no_tok.mkdir()
    for name in ("config.json", "model.safetensors"):
        (no_tok / name).write_bytes((folder / name).read_bytes())
    with pytest.raises(ValueError) as err:
        export_repo(no_tok, tmp_path / "out")
    assert "tokenizer" in str(err.value) and "config.json (" not in str(err.value)
    assert "weights" not in str(err.value)

    with pytest.raises(ValueError, match="does not exist"):
        export_repo(tmp_path / "nope", tmp_path / "out")

    bart = tmp_path / "bart"
    bart.mkdir()
    for name in ("model.safetensors", "tokenizer.json"):
        (bart / name).write_bytes((folder / name).read_bytes())
    (bart / "config.json").write_text(json.dumps({"model_type": "bart"}))
    with pytest.raises(ValueError, match="model_type 'bart'"):
        export_repo(bart, tmp_path / "out")

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("user data")
    with pytest.raises(ValueError, match="not empty"):
        export_repo(folder, busy)
    assert (busy / "keep.txt").exists()
    with pytest.raises(ValueError, match="outside its interval"):  # bad input: the old folder survives
        export_repo(folder, busy, overwrite=True, metrics={"rouge1": 50.0, "rouge1_low": 1, "rouge1_high": 2})
    assert (busy / "keep.txt").exists()
    export_repo(folder, busy, overwrite=True, benchmarks_dir=None)
    assert not (busy / "keep.txt").exists() and check_repo(busy) == []
    with pytest.raises(ValueError, match="without dataset"):
        export_repo(folder, tmp_path / "out2", metrics=METRICS)
    assert not (tmp_path / "out2").exists(), "nothing may be written when the arguments are invalid"


def test_export_rejects_tokenizer_that_does_not_fit_the_model(saved_model, tmp_path):
    tokenizer = saved_model[2]
    small = tmp_path / "small_vocab"
    torch.manual_seed(0)
    PyramidionForConditionalGeneration(hub_config(vocab_size=len(tokenizer) - 10)).save_pretrained(small)
    tokenizer.save_pretrained(small)
    with pytest.raises(ValueError, match="vocab_size"):
        export_repo(small, tmp_path / "out")


def test_export_sets_unset_tokenizer_max_length(saved_model, tmp_path):
    folder, _, tokenizer = saved_model[:3]
    unbounded = tmp_path / "unbounded"
    unbounded.mkdir()
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        (unbounded / name).write_bytes((folder / name).read_bytes())
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    tok_config.pop("model_max_length")
    (unbounded / "tokenizer_config.json").write_text(json.dumps(tok_config))
    (unbounded / "tokenizer.json").write_bytes((folder / "tokenizer.json").read_bytes())
    out = export_repo(unbounded, tmp_path / "out", benchmarks_dir=None)
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 64


def test_ensure_remote_code_completes_an_old_style_folder(tmp_path):
    """A config without auto_map/custom_pipelines and without the .py files gets them from pyramidion_hf."""
    old = tmp_path / "old"
    old.mkdir()
    (old / "config.json").write_text(json.dumps({"model_type": "pyramidion", "encoder_lengths": [64, 16]}))
    config = hub_export._ensure_remote_code(old)
    assert config["auto_map"] == hub_export.AUTO_MAP
    assert config["custom_pipelines"] == hub_export.DEFAULT_CUSTOM_PIPELINES
    assert json.loads((old / "config.json").read_text())["auto_map"] == hub_export.AUTO_MAP
    names = {p.name for p in old.glob("*.py")}
    assert {"configuration_pyramidion.py", "modeling_pyramidion.py", "pipeline_summarization.py"} <= names
    missing = check_repo(old)
    assert not [m for m in missing if "auto_map" in m or "custom_pipelines" in m or "pyramidion" in m], (
        missing
    )


# ------------------------------------------------------------------------------------------------ card


def test_model_card_metadata_and_body(saved_model, exported):
    model = saved_model[1]
    card = ModelCard.load(exported / "README.md")
    data = card.data.to_dict()
    assert data["pipeline_tag"] == "summarization"
    assert data["library_name"] == "transformers"
    assert data["license"] == "mit"
    assert {"pyramidion", "summarization", "long-document", "custom_code"} <= set(data["tags"])
    assert data["datasets"] == ["sobamchan/aclsum"]
    widget = data["widget"][0]
    assert len(widget["text"]) > 2000 and widget["example_title"]
    results = {r.metric_config: r for r in card.data.eval_results}
    assert set(results) == {"rouge1", "rouge2", "rougeL", "rougeLsum"}
    for key, result in results.items():
        assert result.metric_type == "rouge" and result.task_type == "summarization"
        assert result.dataset_type == "sobamchan/aclsum" and result.dataset_split == "test"
        assert result.metric_value == METRICS[key]
        assert result.metric_args == {
            "confidence_level": 0.95,
            "ci_low": METRICS[f"{key}_low"],
            "ci_high": METRICS[f"{key}_high"],
        }
        assert result.verified is None
    text = card.text
    assert "30.12 [28.00, 32.50]" in text and "8.10 [7.02, 9.30]" in text and "25.25 [24.00, 26.50]" in text
    assert "| Lead | 28.00 | 6.50 | 17.00 | 24.00 |" in text
    assert "64 → 32 → 16" in text and "| Pooling after encoder layers | 2, 3 |" in text
    assert f"| Parameters | {model.num_parameters():,} |" in text
    assert "| Training documents | 100 |" in text
    assert "trust_remote_code=True" in text and 'pipeline("summarization"' in text
    assert "@inproceedings{pietruszka-etal-2022-sparsifying" in text and "Garncarek" in text
    assert "No speed benchmark was measured" in text
    assert "Trained from scratch on 100 documents" in text


def test_render_model_card_without_metrics_and_with_benchmarks(tmp_path):
    bench = tmp_path / "results"
    bench.mkdir()
    (bench / "generation_time.md").write_text(
        "# Generation time, 8k input\n\nSome words.\n\n| model | s/batch |\n| --- | --- |\n"
        "| blockwise | 9.9 |\n"
        "| deep-pyramidion | 2.2 |\n\nafter\n"
    )
    (bench / "paper_8k").mkdir()
    (bench / "paper_8k" / "models.md").write_text("# Models\n\n| model | s |\n|---|---|\n| deep | 57 |\n")
    card_text = render_model_card(tiny_config(), benchmarks_dir=bench, widget_text="A document. " * 50)
    card = ModelCard(card_text)
    assert card.data.eval_results is None and "model-index" not in card.data.to_dict()
    assert "has not been evaluated" in card.text
    assert "**Generation time, 8k input** (`benchmarks/results/generation_time.md`)" in card.text
    assert "| deep-pyramidion | 2.2 |" in card.text and "No speed benchmark" not in card.text
    # a run kept in a subfolder is named after it
    assert "**Models [paper_8k]** (`benchmarks/results/paper_8k/models.md`)" in card.text
    assert "| deep | 57 |" in card.text
    assert card.data.widget == [{"text": "A document. " * 50, "example_title": "Document"}]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "No speed benchmark was measured" in render_model_card(tiny_config(), benchmarks_dir=empty)


@pytest.mark.parametrize(
    ("overrides", "variant"),
    [
        ({"encoder_lengths": [64, 64], "block_size": None}, "Vanilla"),
        ({"encoder_lengths": [64, 64], "block_size": 16}, "Blockwise"),
        ({"encoder_lengths": [64, 16]}, "Transpooler"),
        ({"encoder_lengths": [64, 32, 16]}, "Pyramidion"),
        ({"encoder_lengths": [32, 16], "scorer": "power", "topk": "hard"}, "PoWER-like"),
        ({"encoder_lengths": [16, 16], "scorer": "mean", "funnel_upsample": True}, "Funnel-like"),
    ],
)
def test_describe_variant(overrides, variant):
    config = tiny_config(**overrides)
    assert describe_variant(config)[0] == variant
    assert f"| Variant | {variant} |" in render_model_card(config, benchmarks_dir=None)


def test_describe_variant_deep_pyramidion_preset():
    from pyramidion_hf.presets import get_preset

    assert describe_variant(get_preset("deep-pyramidion"))[0] == "DeepPyramidion"
    assert describe_variant(get_preset("deep-blockwise"))[0] == "Blockwise"


def test_preset_is_recorded_and_shown_on_the_card(tmp_path):
    from pyramidion_hf.presets import get_preset

    config = get_preset("deep-pyramidion")
    assert config.preset == "table3-deep-pyramidion"  # an alias records the paper row it names
    config.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["preset"] == "table3-deep-pyramidion"
    card = render_model_card(tmp_path)  # read back from the saved config.json
    assert "| Variant | DeepPyramidion |" in card
    assert "| Preset | `table3-deep-pyramidion`: DeepPyramidion 8k" in card and "[Table 3 (Table 6" in card
    # without the recorded preset the same sizes are named from structure only
    saved.pop("preset")
    assert describe_variant(saved)[0] == "Pyramidion"
    assert "| Preset |" not in render_model_card(saved)
    unknown = render_model_card(tiny_config(preset="no-such-preset"))
    assert "| Preset | `no-such-preset` |" in unknown and "| Variant | Transpooler |" in unknown


@pytest.mark.parametrize(
    ("topk", "shown", "absent"),
    [
        (
            "successive_halving",
            "`successive_halving` (τ = 0.5, sorted pairing = True, weighting = sigmoid)",
            "",
        ),
        ("iterative", "`iterative` (τ = 0.5) |", "sorted pairing"),
        ("hard", "| Top-k operator | `hard` |", "τ"),
    ],
)
def test_card_shows_only_the_options_of_the_topk_operator(topk, shown, absent):
    card = render_model_card(tiny_config(topk=topk, topk_temperature=0.5))
    assert shown in card
    assert not absent or absent not in card


def test_benchmarks_section_only_when_a_folder_is_passed(tmp_path):
    bench = tmp_path / "results"
    bench.mkdir()
    (bench / "speed.md").write_text("# Speed\n\n| model | s |\n| --- | --- |\n| tiny | 1.0 |\n")
    assert "**Speed** (`benchmarks/results/speed.md`)" in render_model_card(
        tiny_config(), benchmarks_dir=bench
    )
    default = render_model_card(tiny_config())
    assert "**Speed**" not in default and "No speed benchmark was measured" in default


def test_metrics_validation():
    parsed = normalize_metrics(
        {
            "test_rouge1": 40.0,
            "test_rouge1_low": 39.0,
            "test_rouge1_high": 41.0,
            "test_rouge2": 15.0,
            "baselines": {"Lead-3": {"rouge1": 38.0}},
        }
    )
    assert parsed["scores"] == {"rouge1": (40.0, 39.0, 41.0), "rouge2": (15.0, None, None)}
    assert parsed["baselines"] == {"Lead-3": {"rouge1": (38.0, None, None)}}
    with pytest.raises(ValueError, match="outside its interval"):
        normalize_metrics({"rouge1": 45.0, "rouge1_low": 39.0, "rouge1_high": 41.0})
    with pytest.raises(ValueError, match="both rouge2_low and rouge2_high"):
        normalize_metrics({"rouge2": 15.0, "rouge2_low": 14.0})
    with pytest.raises(ValueError, match="no ROUGE scores"):
        normalize_metrics({"bleu": 30.0})
    with pytest.raises(ValueError, match="finite number"):
        normalize_metrics({"rouge1": float("nan")})
    with pytest.raises(ValueError, match="without dataset"):
        render_model_card(tiny_config(), metrics={"rouge1": 40.0})
    with pytest.raises(ValueError, match="Pyramidion models only"):
        render_model_card({"model_type": "bart"})


# ------------------------------------------------------------------------------------------------ push


class FakeHfApi:
    """Records what push_repo asks of the Hub; never touches the network."""

    calls: list = []

    def __init__(self, token=None):
        FakeHfApi.calls.append(("init", token))

    def create_repo(self, repo_id, **kwargs):
        FakeHfApi.calls.append(("create_repo", repo_id, kwargs))
        from huggingface_hub.hf_api import RepoUrl

        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, **kwargs):
        FakeHfApi.calls.append(("upload_folder", kwargs))

        class Commit:
            commit_url = f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"

        return Commit()


class NoNetworkHfApi:
    def __init__(self, *args, **kwargs):
        raise AssertionError("dry_run must not create an HfApi")


def test_push_dry_run_lists_files_without_network(exported, monkeypatch):
    monkeypatch.setattr(hub_push, "HfApi", NoNetworkHfApi)
    result = push_repo(exported, "someone/pyramidion-tiny", dry_run=True)
    assert isinstance(result, PushResult) and result.dry_run
    assert result.repo_id == "someone/pyramidion-tiny"
    assert result.files == repo_files(exported)
    assert {"README.md", "model.safetensors", "handler.py", "modeling_pyramidion.py"} <= set(result.files)


def test_push_uploads_with_hfapi(exported, monkeypatch):
    FakeHfApi.calls = []
    monkeypatch.setattr(hub_push, "HfApi", FakeHfApi)
    result = push_repo(exported, "someone/pyramidion-tiny", private=True, token="hf_fake")
    assert FakeHfApi.calls[0] == ("init", "hf_fake")
    assert FakeHfApi.calls[1] == (
        "create_repo",
        "someone/pyramidion-tiny",
        {"private": True, "exist_ok": True, "repo_type": "model"},
    )
    kind, upload = FakeHfApi.calls[2]
    assert kind == "upload_folder"
    assert upload["repo_id"] == "someone/pyramidion-tiny" and upload["repo_type"] == "model"
    assert Path(upload["folder_path"]) == exported
    assert upload["allow_patterns"] == repo_files(exported)
    assert result.url == "https://huggingface.co/someone/pyramidion-tiny"
    assert result.commit_url.endswith("/commit/abc") and not result.dry_run and result.private


def test_push_rejects_bad_input(exported, tmp_path, monkeypatch):
    monkeypatch.setattr(hub_push, "HfApi", NoNetworkHfApi)
    with pytest.raises(ValueError, match="Repo id"):
        push_repo(exported, "not a/valid/id", dry_run=True)
    with pytest.raises(ValueError, match="run `pyramidion-hub export"):
        push_repo(tmp_path / "missing", "someone/x", dry_run=True)
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "README.md").write_text("# nothing")
    with pytest.raises(ValueError, match="not a complete exported repository"):
        push_repo(partial, "someone/x", dry_run=True)


# ------------------------------------------------------------------------------------------------ CLI


def test_cli_export_and_push(saved_model, tmp_path, monkeypatch, capsys):
    folder = saved_model[0]
    metrics_file = tmp_path / "metrics.json"
    metrics_file.write_text(json.dumps(METRICS))
    widget_file = tmp_path / "widget.txt"
    widget_file.write_text("An example long document about pooling. " * 40)
    bench = tmp_path / "results"
    bench.mkdir()
    (bench / "speed.md").write_text("# Speed\n\n| model | s |\n| --- | --- |\n| tiny | 1.0 |\n")
    out = tmp_path / "cli_repo"
    main(
        [
            "export",
            str(folder),
            str(out),
            "--metrics",
            str(metrics_file),
            "--dataset",
            "aclsum",
            "--widget-file",
            str(widget_file),
            "--model-name",
            "tiny-pyramidion",
            "--repo-id",
            "me/tiny-pyramidion",
            "--benchmarks-dir",
            str(bench),
        ]
    )
    assert check_repo(out) == []
    card = ModelCard.load(out / "README.md")
    assert card.data.widget[0]["text"] == widget_file.read_text()
    assert card.data.model_name == "tiny-pyramidion"
    assert 'model_id = "me/tiny-pyramidion"' in card.text
    assert "**Speed** (`benchmarks/results/speed.md`)" in card.text
    assert "pyramidion-hub push" in capsys.readouterr().out

    monkeypatch.setattr(hub_push, "HfApi", NoNetworkHfApi)
    main(["push", str(out), "--repo-id", "me/tiny-pyramidion", "--dry-run"])
    printed = capsys.readouterr().out
    assert "Would upload" in printed and "me/tiny-pyramidion" in printed and "  README.md" in printed

    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "missing"), str(tmp_path / "o")])
    assert exit_info.value.code == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(folder), str(tmp_path / "o"), "--metrics", str(tmp_path / "none.json")])
    assert "metrics file" in capsys.readouterr().err


def test_module_entry_point_dry_run(exported, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "pyramidion_hf.hub", "push", str(exported), "--repo-id", "me/x", "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Would upload" in proc.stdout and "  model.safetensors" in proc.stdout


# -------------------------------------------------------------------------------------------- committed cards


def test_committed_example_card_parses():
    path = REPO_ROOT / "model_cards" / "example" / "README.md"
    card = ModelCard.load(path)
    data = card.data.to_dict()
    assert data["pipeline_tag"] == "summarization" and "pyramidion" in data["tags"]
    assert card.data.eval_results, "the example card carries measured ROUGE of its tiny model"
    for result in card.data.eval_results:
        assert isinstance(result.metric_value, float) and result.metric_args["ci_low"] <= result.metric_value
    assert "Lead" in card.text
