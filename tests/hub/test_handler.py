"""The Inference Endpoints handler template: clear refusals of empty requests, and its dtype choice (the same
rule as pyramidion_hf's dtype "auto", from a probe of its own: the handler runs without pyramidion_hf)."""

from __future__ import annotations

import importlib.util
import io

import pytest
import torch

from pyramidion_hf import model_folder
from pyramidion_hf.hub.export import HANDLER_TEMPLATE


@pytest.fixture
def handler_module():
    """The template loaded as the endpoint loads it: a file, not a module of pyramidion_hf."""
    spec = importlib.util.spec_from_file_location("endpoint_handler", HANDLER_TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakePipeline:
    """Records how the handler builds its pipeline and answers one summary per document."""

    def __init__(self, task, **kwargs):
        self.task, self.kwargs = task, kwargs

    def __call__(self, documents, **parameters):
        return [[{"summary_text": f"summary of {doc.split()[0]}"}] for doc in documents]


@pytest.fixture
def handler(handler_module, monkeypatch):
    monkeypatch.setattr(handler_module, "pipeline", FakePipeline)
    monkeypatch.setattr(handler_module, "fast_bf16", lambda cuda: True)
    monkeypatch.delenv(handler_module.DTYPE_ENV, raising=False)
    return handler_module.EndpointHandler("some/folder")


@pytest.mark.parametrize(
    "data,phrase",
    [
        ({"inputs": ""}, "empty or blank document(s) (first at index 0)"),
        ({"inputs": "  \n\t"}, "empty or blank"),
        ({"inputs": []}, "non-empty list of strings"),
        ({"inputs": ["a real document", " "]}, "1 empty or blank document(s) (first at index 1)"),
        ({"inputs": ["ok", 3]}, "non-empty list of strings"),
        ({"text": "no inputs key"}, 'JSON object with "inputs"'),
        ("just a string", 'JSON object with "inputs"'),
        ({"inputs": "ok", "parameters": [1]}, '"parameters" must be a JSON object'),
    ],
)
def test_refuses_empty_or_malformed_requests(handler, data, phrase):
    with pytest.raises(ValueError) as err:
        handler(data)
    assert phrase in str(err.value)


def test_answers_valid_requests(handler):
    assert handler({"inputs": "alpha beta"}) == [{"summary_text": "summary of alpha"}]
    assert handler({"inputs": ["alpha", "beta"], "parameters": {"num_beams": 2}}) == [
        {"summary_text": "summary of alpha"},
        {"summary_text": "summary of beta"},
    ]


def test_pipeline_gets_the_picked_dtype(handler_module, monkeypatch):
    monkeypatch.setattr(handler_module, "pipeline", FakePipeline)
    monkeypatch.delenv(handler_module.DTYPE_ENV, raising=False)
    monkeypatch.setattr(handler_module, "fast_bf16", lambda cuda: True)
    built = handler_module.EndpointHandler("folder").summarizer
    assert built.task == "summarization" and built.kwargs["trust_remote_code"] is True
    assert built.kwargs["dtype"] == torch.bfloat16 and built.kwargs["model"] == "folder"
    monkeypatch.setattr(handler_module, "fast_bf16", lambda cuda: False)
    assert handler_module.EndpointHandler("folder").summarizer.kwargs["dtype"] == torch.float32
    monkeypatch.setattr(handler_module, "fast_bf16", lambda cuda: True)
    monkeypatch.setenv(handler_module.DTYPE_ENV, "fp32")
    assert handler_module.EndpointHandler("folder").summarizer.kwargs["dtype"] == torch.float32
    monkeypatch.setenv(handler_module.DTYPE_ENV, "half")
    with pytest.raises(ValueError, match="PYRAMIDION_DTYPE='half': set it to fp32 or bf16"):
        handler_module.EndpointHandler("folder")


@pytest.mark.parametrize(
    "cpuinfo",
    [
        "flags\t: fpu sse avx512f avx512_bf16",
        "flags\t: fpu amx_bf16 amx_tile",
        "flags\t: fpu sse avx2 avx512f",
        None,  # no /proc/cpuinfo
    ],
)
def test_cpu_rule_is_the_packages_auto_rule(handler_module, monkeypatch, tmp_path, cpuinfo):
    """Same flags, same answer as pyramidion_hf.model_folder.cpu_has_fast_bf16 (torch's probe aside)."""
    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo + "\n")

    def fake_open(name, *args, **kwargs):
        assert name == "/proc/cpuinfo"
        if cpuinfo is None:
            raise FileNotFoundError(name)
        return io.StringIO(cpuinfo + "\n")

    monkeypatch.setattr(handler_module, "open", fake_open, raising=False)
    monkeypatch.setattr(model_folder, "CPUINFO", path)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    monkeypatch.delenv(model_folder.DTYPE_ENV, raising=False)
    assert handler_module.fast_bf16(cuda=False) is model_folder.cpu_has_fast_bf16()
    assert handler_module.pick_dtype(cuda=False) == model_folder.resolve_dtype("auto")


def test_cuda_rule(handler_module, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert handler_module.fast_bf16(cuda=True) is True
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert handler_module.fast_bf16(cuda=True) is False
