"""Saved folders are Hub remote code: they load and generate the same without pyramidion_hf installed."""

from __future__ import annotations

import json
import sys
import textwrap

import torch
from conftest import random_batch, run_without_package, tiny_model

from pyramidion_hf import SummarizationPipeline

REMOTE_FILES = {
    "inputs.py",
    "attention.py",
    "configuration_pyramidion.py",
    "modeling_pyramidion.py",
    "pooling.py",
    "precision.py",
    "topk.py",
    "pipeline_summarization.py",
}

CHILD = textwrap.dedent(
    """
    import json, sys
    sys.modules["pyramidion_hf"] = None  # `import pyramidion_hf` now raises ImportError
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, pipeline

    folder, resave = sys.argv[1], sys.argv[2]
    try:
        import pyramidion_hf  # noqa: F401
        raise SystemExit("pyramidion_hf is importable in the child")
    except ImportError:
        pass
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
    base = AutoModel.from_pretrained(folder, trust_remote_code=True)
    inputs = torch.load(folder + "/inputs.pt")
    greedy = model.generate(**inputs, max_new_tokens=8, min_new_tokens=8)
    beam = model.generate(**inputs, max_new_tokens=8, min_new_tokens=8, num_beams=3)
    summarize = pipeline("summarization", model=folder, trust_remote_code=True, device=-1)
    summaries = summarize(["w1 w2 w3 w4 w5 w6", "w7 w8"], max_new_tokens=5)
    model.save_pretrained(resave)
    loaded = sorted(m for m, module in sys.modules.items() if "pyramidion" in m and module is not None)
    print(json.dumps({
        "config_class": type(config).__module__ + "." + type(config).__name__,
        "model_class": type(model).__module__ + "." + type(model).__name__,
        "base_class": type(base).__name__,
        "greedy": greedy.tolist(),
        "beam": beam.tolist(),
        "pipeline_class": type(summarize).__module__ + "." + type(summarize).__name__,
        "summaries": [s["summary_text"] for s in summaries],
        "modules_loaded": loaded,
    }))
    """
)


def test_saved_folder_loads_and_generates_without_the_package(tmp_path, tokenizer):
    folder, resave = tmp_path / "model", tmp_path / "resaved"
    model = tiny_model(encoder_lengths=[32, 16], seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert REMOTE_FILES <= {p.name for p in folder.iterdir()}
    ids, mask = random_batch([64, 30, 9], 64)
    torch.save({"input_ids": ids, "attention_mask": mask}, folder / "inputs.pt")

    child = run_without_package(CHILD, str(folder), str(resave), cwd=tmp_path)

    assert child["config_class"].startswith("transformers_modules.")
    assert child["config_class"].endswith("configuration_pyramidion.PyramidionConfig")
    assert child["model_class"].endswith("modeling_pyramidion.PyramidionForConditionalGeneration")
    assert child["base_class"] == "PyramidionModel"
    assert child["pipeline_class"].endswith("pipeline_summarization.SummarizationPipeline")
    assert not any(m.startswith("pyramidion_hf") for m in child["modules_loaded"])

    greedy = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, min_new_tokens=8)
    beam = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, min_new_tokens=8, num_beams=3)
    assert child["greedy"] == greedy.tolist()
    assert child["beam"] == beam.tolist()
    local = SummarizationPipeline(model=model, tokenizer=tokenizer, device=-1)
    assert child["summaries"] == [
        s["summary_text"] for s in local(["w1 w2 w3 w4 w5 w6", "w7 w8"], max_new_tokens=5)
    ]

    # a model loaded as remote code saves a folder that is remote code again, pipeline file included
    assert REMOTE_FILES <= {p.name for p in resave.iterdir()}
    config = json.loads((resave / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM"}
    assert (
        config["custom_pipelines"]["summarization"]["impl"] == "pipeline_summarization.SummarizationPipeline"
    )


def test_remote_code_files_import_only_torch_transformers_and_siblings():
    import ast
    from pathlib import Path

    import pyramidion_hf

    package = Path(pyramidion_hf.__file__).parent / "modeling"
    for name in REMOTE_FILES:
        tree = ast.parse((package / name).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level > 0:
                    assert f"{node.module}.py" in REMOTE_FILES, (name, node.module)
                    continue
                roots = {node.module.split(".")[0]}
            else:
                continue
            allowed = {"torch", "transformers", "__future__"} | set(sys.stdlib_module_names)
            assert roots <= allowed, (name, roots)
