"""Tests for pyramidion_hf.analysis: the tokens surviving each pooling layer; terminal/HTML views; the CLI."""

from __future__ import annotations

import io
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from importlib.metadata import entry_points

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file, save_file

from pyramidion_hf import PyramidionForConditionalGeneration, model_folder
from pyramidion_hf.analysis import cli
from pyramidion_hf.analysis.cli import main
from pyramidion_hf.analysis.explain import Explanation, explain
from pyramidion_hf.analysis.render_terminal import wants_color
from pyramidion_hf.modeling.topk import TOPK_OPTIONS
from pyramidion_hf.training.tokenizer import train_tokenizer

CORPUS = [
    "Trainable pooling keeps the best token representations of a long document and drops the rest. " * 3,
    "The decoder attends to the pooled vectors only, so summaries are cheap to generate.",
    "Scores decide which vectors survive; successive halving pairs the best with the worst.",
]
LONG_TEXT = (
    "Trainable pooling keeps the best tokens of a long document.\nThe decoder reads only what survives, "
    "so the scorer must learn which words matter for the summary and which ones are filler text. "
    "Everything after the sixty-fourth token is never read by this tiny model."
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def pooling_model(tokenizer, seed: int = 0, **overrides) -> PyramidionForConditionalGeneration:
    """Two pooling layers: 64 tokens -> 32 after encoder layer 2 -> 8 after encoder layer 3."""
    config = tiny_config(**{"vocab_size": len(tokenizer), "encoder_lengths": [64, 32, 8], "decoder_layers": 1,
                            **overrides})
    torch.manual_seed(seed)
    return PyramidionForConditionalGeneration(config).eval()


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=300)


@pytest.fixture(scope="module")
def model(tok):
    return pooling_model(tok)


def model_selection(model, tok, text: str, max_length: int = 64):
    """The full model's own encoder_pooling_indices / weights for `text` (row 0), as lists per layer."""
    enc = tok(text, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, decoder_input_ids=torch.tensor([[2, 0]]))
    indices = [i[0].tolist() for i in out.encoder_pooling_indices]
    return indices, [w[0].tolist() for w in out.encoder_pooling_weights]


def check_against_model(exp: Explanation, indices: list[list[int]], weights: list[list[float]]) -> None:
    """Survivors of every layer = the model's real indices of that layer; weights = the model's weights."""
    assert exp.num_pooling_layers == len(indices)
    for layer, (idx, w) in enumerate(zip(indices, weights, strict=True), start=1):
        real = {p: wt for p, wt in zip(idx, w, strict=True) if p >= 0}
        assert set(exp.survivors(layer)) == set(real)
        assert set(exp.survivors(layer)) <= set(exp.survivors(layer - 1))  # later layers pick from survivors
        for token in exp.tokens:
            if token.depth >= layer:
                assert token.weights[layer - 1] == pytest.approx(real[token.position], abs=1e-6)
                assert token.slots[layer - 1] == 1
    final = {p for p in indices[-1] if p >= 0}
    assert exp.survivors(len(indices)) == sorted(final)


@pytest.mark.parametrize(
    "scorer,topk",
    [
        ("linear", "successive_halving"),
        ("nonlinear", "iterative"),
        ("linear", "hard"),
        ("power", "hard"),
        ("embedding", "successive_halving"),
        ("index", "successive_halving"),
        ("random", "successive_halving"),
        ("mean", "successive_halving"),
        ("max", "successive_halving"),
    ],
)
def test_survivors_and_weights_match_the_model(tok, scorer, topk):
    model = pooling_model(tok, scorer=scorer, topk=topk)
    torch.manual_seed(1)  # the random scorer draws the same scores in both calls
    exp = explain(model, tok, LONG_TEXT)
    torch.manual_seed(1)
    indices, weights = model_selection(model, tok, LONG_TEXT)
    check_against_model(exp, indices, weights)
    assert len(exp.tokens) == 64 and exp.truncated
    assert [s.kept for s in exp.layers] == [32, 8]  # a full-length document fills every k
    assert [s.received for s in exp.layers] == [64, 32]
    assert [s.encoder_layer for s in exp.layers] == [1, 2]
    assert [s.fraction for s in exp.layers] == [0.5, 0.125]
    depths = [t.depth for t in exp.tokens]
    assert depths.count(0) == 32 and depths.count(1) == 24 and depths.count(2) == 8
    if topk == "hard" and scorer not in ("mean", "max"):
        assert all(w == 1.0 for t in exp.tokens for w in t.weights)
    if scorer in ("mean", "max"):
        assert any("window's first token" in note for note in exp.notes)
        # windows of 2 then 4 consecutive survivors: the first tokens are every 2nd, then every 8th position
        assert exp.survivors(1) == list(range(0, 64, 2)) and exp.survivors(2) == list(range(0, 64, 8))
        assert all(t.weights == (0.5, 0.25)[: t.depth] for t in exp.tokens)


def test_path_weight_and_mean_weight(tok, model):
    exp = explain(model, tok, LONG_TEXT)
    _, weights = model_selection(model, tok, LONG_TEXT)
    for summary, w in zip(exp.layers, weights, strict=True):
        assert summary.mean_weight == pytest.approx(sum(w) / len(w), abs=1e-6)  # all slots real here
    top = [t for t in exp.tokens if t.depth == 2]
    assert all(t.path_weight == pytest.approx(t.weights[0] * t.weights[1]) for t in top)
    assert all(0.0 < t.path_weight <= 1.0 for t in top)


def test_funnel_upsample_reports_the_inner_pooling(tok):
    model = pooling_model(tok, funnel_upsample=True)
    exp = explain(model, tok, LONG_TEXT)
    indices, weights = model_selection(model, tok, LONG_TEXT)
    check_against_model(exp, indices, weights)
    assert any("funnel_upsample" in note for note in exp.notes)


def test_short_document_keeps_every_token(tok, model):
    text = "keeps the best"
    exp = explain(model, tok, text)
    n = len(tok(text)["input_ids"])
    assert n < 8 and len(exp.tokens) == n
    assert all(t.depth == 2 for t in exp.tokens)
    assert [s.kept for s in exp.layers] == [n, n] and [s.k for s in exp.layers] == [32, 8]
    assert not exp.truncated and any("shorter than every pooling size" in note for note in exp.notes)
    indices, weights = model_selection(model, tok, text)
    check_against_model(exp, indices, weights)


def test_model_without_pooling_keeps_everything(tok):
    model = pooling_model(tok, encoder_lengths=[64, 64])
    exp = explain(model, tok, "The decoder attends to the pooled vectors only.")
    assert exp.layers == [] and exp.num_pooling_layers == 0
    assert exp.survivors(0) == list(range(len(exp.tokens)))
    assert all(t.depth == 0 and t.weights == () and t.path_weight == 1.0 for t in exp.tokens)
    assert any("no pooling layer" in note for note in exp.notes)
    assert "no pooling" in exp.to_terminal(color=False) and "no pooling layer" in exp.to_html()
    assert "\x1b" not in exp.to_terminal(color=True).split("\n\n")[1]  # nothing to highlight
    truncated = explain(model, tok, LONG_TEXT, max_length=10)
    assert truncated.truncated and any("not read" in note for note in truncated.notes)


def test_token_text_comes_from_offsets(tok, model):
    text = "Pooling  keeps é and <b>"
    exp = explain(model, tok, text)
    assert exp.tokens[0].special and exp.tokens[-1].special and exp.tokens[0].text == ""
    for t in exp.tokens:
        assert t.text == text[t.start : t.end]
    # every character of the text is covered by exactly one rendered piece, in order
    assert "".join(p.text for p in exp.pieces() if not p.special) == text
    e_acute = [p for p in exp.pieces() if p.text == "é"]
    assert len(e_acute) == 1 and len(e_acute[0].tokens) == 2  # its two byte tokens share one piece


def test_truncation_and_max_length(tok, model):
    exp = explain(model, tok, LONG_TEXT, max_length=20)
    assert len(exp.tokens) == 20 and exp.truncated and exp.max_length == 20
    assert exp.read_chars < len(LONG_TEXT)
    assert [s.kept for s in exp.layers] == [20, 8]
    indices, weights = model_selection(model, tok, LONG_TEXT, max_length=20)
    check_against_model(exp, indices, weights)
    assert any(p.unread and p.text.endswith("never read by this tiny model.") for p in exp.pieces())
    page = exp.to_html()
    tail = LONG_TEXT[exp.read_chars :].strip()
    assert f'not read: beyond max_length=20</span><span class="unread">{tail}</span>' in page
    assert page.index("&lt;/s&gt;</span>") < page.index('class="unread"')  # </s> was read, the tail not
    with pytest.raises(ValueError, match="max_length"):
        explain(model, tok, LONG_TEXT, max_length=65)
    with pytest.raises(ValueError, match="max_length"):
        explain(model, tok, LONG_TEXT, max_length=0)


def test_bad_inputs(tok, model):
    with pytest.raises(ValueError, match="empty"):
        explain(model, tok, "  \n ")
    with pytest.raises(ValueError, match="str"):
        explain(model, tok, ["a list"])
    with pytest.raises(ValueError, match="Pyramidion model"):
        explain(torch.nn.Linear(2, 2), tok, "text")


def test_restores_training_mode(tok, model):
    model.train()
    try:
        exp = explain(model, tok, LONG_TEXT)
        assert model.training
    finally:
        model.eval()
    assert exp.survivors(2) == explain(model, tok, LONG_TEXT).survivors(2)


class _DocText(HTMLParser):
    """Collects the text of div.doc (without special-token badges) and every title inside it."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.depth, self.in_special, self.text, self.titles, self.tags = 0, 0, [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.add(tag)
        classes = (attrs.get("class") or "").split()
        if tag == "div" and "doc" in classes:
            self.depth = 1
        elif self.depth:
            self.depth += 1
            if "special" in classes:
                self.in_special = self.depth
            if attrs.get("title"):
                self.titles.append(attrs["title"])

    def handle_endtag(self, tag):
        if self.depth:
            if self.in_special == self.depth:
                self.in_special = 0
            self.depth -= 1

    def handle_data(self, data):
        if self.depth and not self.in_special:
            self.text.append(data)


def test_html_is_self_contained_and_escaped(tok, model, tmp_path):
    text = 'A <script>alert("x")</script> & <b>bold</b> \'quote\'\nsecond line'
    exp = explain(model, tok, text)
    page = exp.to_html()
    lowered = page.lower()
    for forbidden in ("http", "<script", "src=", "<link", "@import", "url("):
        assert forbidden not in lowered
    assert page.startswith("<!DOCTYPE html>") and "<style>" in page
    parser = _DocText()
    parser.feed(page)
    assert "".join(parser.text) == text  # the document survives escaping character for character
    assert parser.tags <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "div", "span",
                           "table", "thead", "tbody", "tr", "th", "td", "ul", "li", "code"}
    assert len(parser.titles) == len(exp.pieces()) - sum(1 for p in exp.pieces() if p.tokens is None)
    assert all(t.startswith("token ") for t in parser.titles)
    assert any("pooling 1" in t and "weight" in t for t in parser.titles)
    # legend, per-layer counts and schedule
    assert "dropped at pooling 1" in page and "survived all 2" in page
    assert "<td>32</td><td>8</td>" in page  # pooling 2: 32 vectors in, k=8
    assert "pooling 2: keep k=8 (linear, successive_halving)" in page
    path = exp.save_html(tmp_path / "sub" / "x.html")
    assert path.read_text(encoding="utf-8") == page


def test_terminal_views(tok, model):
    text = "Trainable pooling keeps the best tokens.\nThe decoder reads what survives."
    exp = explain(model, tok, text)
    plain = exp.to_terminal(color=False)
    assert "\x1b" not in plain
    colored = exp.to_terminal(color=True)
    assert "\x1b[1;38;5;16;48;5;202m" in colored  # survivors of every layer: bold on the strongest colour
    assert ANSI.sub("", colored.split("\n\n")[1]) == "<s>" + text + "</s>"
    for line in colored.split("\n"):  # every line ends reset: backgrounds never bleed into the next line
        assert not ANSI.findall(line) or line.endswith("\x1b[0m")
    marked = re.findall(r"\[([^\]]*):(\d)\]", plain.split("\n\n")[1])
    assert len(marked) == sum(1 for p in exp.pieces() if p.tokens and max(t.depth for t in p.tokens) > 0)
    n = len(exp.tokens)
    assert n > 32 and f"kept 32 of {n} vectors (k=32)" in plain and "kept 8 of 32 vectors (k=8)" in plain
    assert f"{100 * 8 / n:.1f}% of the document" in plain


@pytest.fixture(scope="module")
def saved(tok, tmp_path_factory):
    folder = tmp_path_factory.mktemp("explain-model")
    pooling_model(tok).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_cli_end_to_end(saved, tmp_path, capsys, tok):
    doc = tmp_path / "doc.txt"
    doc.write_text(LONG_TEXT, encoding="utf-8")
    out = tmp_path / "view.html"
    main([str(saved), str(doc), "--html", str(out), "--no-color", "--dtype", "fp32"])  # as `reference` below
    printed = capsys.readouterr().out
    assert "\x1b" not in printed
    assert "pooling 2 (after encoder layer 3): kept 8 of 32 vectors" in printed
    assert f"wrote the HTML view to {out.resolve()}" in printed
    page = out.read_text(encoding="utf-8")
    reference = explain(pooling_model(tok), tok, LONG_TEXT).to_html()  # the reloaded model selects the same
    assert page == reference
    main([str(saved), str(doc), "--max-length", "16", "--color", "always"])
    printed = capsys.readouterr().out
    assert "\x1b[" in printed and "truncated to max_length=16" in printed and "wrote" not in printed


@pytest.mark.parametrize(
    "content,message",
    [(None, "no such file"), (b"", "is empty"), (b"  \n", "is empty"), (b"\xff\xfe bad", "not utf-8")],
)
def test_cli_file_errors(saved, tmp_path, capsys, content, message):
    doc = tmp_path / "doc.txt"
    if content is not None:
        doc.write_bytes(content)
    with pytest.raises(SystemExit) as err:
        main([str(saved), str(doc)])
    assert err.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_bad_model_dir_and_max_length(saved, tmp_path, capsys):
    doc = tmp_path / "doc.txt"
    doc.write_text("some text", encoding="utf-8")
    with pytest.raises(SystemExit):
        main([str(tmp_path / "missing-model"), str(doc)])
    assert "cannot load a model" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(saved), str(doc), "--max-length", "1000"])
    assert "max_length must be" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
def test_python_dash_m_and_console_script(saved, tmp_path, capsys, monkeypatch):
    doc = tmp_path / "doc.txt"
    doc.write_text("The decoder reads what survives.", encoding="utf-8")
    monkeypatch.setattr(sys, "argv", ["pyramidion-explain", str(saved), str(doc), "--no-color"])
    runpy.run_module("pyramidion_hf.analysis", run_name="__main__")
    printed = capsys.readouterr().out
    assert "reach the decoder" in printed and "pooling 1 (after encoder layer 2)" in printed
    scripts = {e.name: e.value for e in entry_points(group="console_scripts")}
    assert scripts.get("pyramidion-explain") == "pyramidion_hf.analysis.cli:main"


class _Terminal(io.StringIO):
    """A captured stdout that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_wants_color(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_color("auto", _Terminal()) and not wants_color("auto", io.StringIO())
    assert wants_color("always", io.StringIO()) and not wants_color("never", _Terminal())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_color("auto", _Terminal()) and wants_color("always", _Terminal())
    with pytest.raises(ValueError, match="color must be one of"):
        wants_color("sometimes", _Terminal())


def test_cli_colours_only_a_terminal(saved, tmp_path, capsys, monkeypatch):
    """--color auto (the default): plain text into a pipe or file, ANSI colours on a terminal."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    doc = tmp_path / "doc.txt"
    doc.write_text(LONG_TEXT, encoding="utf-8")
    main([str(saved), str(doc)])
    piped = capsys.readouterr().out
    assert "\x1b" not in piped and "[" in piped and "kept 8 of 32 vectors" in piped  # `[text:depth]` marks
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    main([str(saved), str(doc)])
    assert "\x1b[" in terminal.getvalue()
    assert ANSI.sub("", terminal.getvalue().split("\n\n")[0]) == piped.split("\n\n")[0]  # same headline
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    main([str(saved), str(doc), "--color", "never"])
    assert "\x1b" not in terminal.getvalue() and terminal.getvalue() == piped


@pytest.mark.parametrize("topk", sorted(TOPK_OPTIONS))
def test_schedule_shows_the_options_the_operator_takes(tok, topk):
    exp = explain(pooling_model(tok, topk=topk), tok, "keeps the best")
    shown = {name.removeprefix("topk_") for name in exp.schedule if name.startswith("topk_")}
    assert exp.schedule["topk"] == topk and shown == set(TOPK_OPTIONS[topk])
    strided = explain(pooling_model(tok, scorer="mean", topk=topk), tok, "keeps the best")
    assert not any(name.startswith("topk") for name in strided.schedule)  # strided pooling uses no operator


def _broken_copy(saved, tmp_path, breakage: str):
    """A copy of the saved folder with one thing wrong."""
    folder = tmp_path / breakage
    shutil.copytree(saved, folder)
    config = json.loads((folder / "config.json").read_text())
    if breakage == "bart":
        config.update(model_type="bart", auto_map=None)
    elif breakage == "fork":
        config.update(model_type="pyramidion_fork")
    elif breakage == "no tokenizer":
        (folder / "tokenizer.json").unlink()
        (folder / "tokenizer_config.json").unlink()
    elif breakage == "truncated":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 3])
    elif breakage == "nan":
        weights = load_file(folder / "model.safetensors")
        weights["model.encoder.layers.1.fc2.weight"][0, 0] = float("nan")
        save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    "breakage,phrase",
    [
        ("bart", "pyramidion-convert"),
        ("fork", "pass --trust-remote-code"),
        ("no tokenizer", "tokenizer.save_pretrained"),
        ("truncated", "truncated or corrupt"),
        ("nan", "first in model.encoder.layers.1.fc2.weight"),
    ],
)
def test_cli_refuses_a_broken_folder_in_one_line(saved, tmp_path, capsys, breakage, phrase):
    doc = tmp_path / "doc.txt"
    doc.write_text("some text", encoding="utf-8")
    with pytest.raises(SystemExit) as err:
        main([str(_broken_copy(saved, tmp_path, breakage)), str(doc)])
    assert err.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("pyramidion-explain: error: cannot load a model"), lines
    assert phrase in lines[0] and "sentencepiece" not in lines[0]


def test_cli_trust_remote_code_and_dtype(saved, tmp_path, capsys, monkeypatch):
    doc = tmp_path / "doc.txt"
    doc.write_text(LONG_TEXT, encoding="utf-8")
    dtypes = []

    def recording_explain(model, *args, **kwargs):
        dtypes.append(model.dtype)
        return explain(model, *args, **kwargs)

    monkeypatch.setattr(cli, "explain", recording_explain)
    monkeypatch.setattr(model_folder, "cpu_has_fast_bf16", lambda: True)
    monkeypatch.delenv(model_folder.DTYPE_ENV, raising=False)
    fork = _broken_copy(saved, tmp_path, "fork")
    main([str(fork), str(doc), "--trust-remote-code", "--no-color"])
    main([str(saved), str(doc), "--no-color", "--dtype", "fp32"])
    monkeypatch.setenv(model_folder.DTYPE_ENV, "fp32")
    main([str(saved), str(doc), "--no-color"])
    assert dtypes == [torch.bfloat16, torch.float32, torch.float32]
    assert capsys.readouterr().out.count("kept 8 of 32 vectors") == 3


def test_cli_failure_has_no_traceback_unless_debug(saved, tmp_path):
    """The installed entry point as a user runs it: one line and status 2; --debug shows the traceback."""
    doc = tmp_path / "doc.txt"
    doc.write_text("some text", encoding="utf-8")
    folder = _broken_copy(saved, tmp_path, "nan")
    command = [sys.executable, "-m", "pyramidion_hf.analysis", str(folder), str(doc)]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    plain = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr
    assert [line for line in plain.stderr.splitlines() if "error" in line] == plain.stderr.splitlines()[-1:]
    assert "NaN or inf" in plain.stderr
    debug = subprocess.run([*command, "--debug"], capture_output=True, text=True, env=env, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ValueError" in debug.stderr
