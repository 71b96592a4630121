"""Pyramidion: long-document encoder-decoders with trainable representation pooling, for transformers.

Importing the package registers the model family with AutoConfig, AutoModel and AutoModelForSeq2SeqLM, and
the summarization pipeline as the task "long-document-summarization" (for models in memory:
`pipeline("long-document-summarization", model=model, tokenizer=tokenizer)`).
"""

from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM
from transformers.pipelines import PIPELINE_REGISTRY

from .modeling.configuration_pyramidion import PIPELINE_TASK, PyramidionConfig
from .modeling.modeling_pyramidion import (
    PyramidionEncoderOutput,
    PyramidionForConditionalGeneration,
    PyramidionModel,
    PyramidionPreTrainedModel,
    PyramidionSeq2SeqLMOutput,
    PyramidionSeq2SeqModelOutput,
)
from .modeling.pipeline_summarization import SummarizationPipeline
from .training.convert import convert_checkpoint  # torch + transformers only, like the model

AutoConfig.register(PyramidionConfig.model_type, PyramidionConfig, exist_ok=True)
AutoModel.register(PyramidionConfig, PyramidionModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(PyramidionConfig, PyramidionForConditionalGeneration, exist_ok=True)
if PIPELINE_TASK not in PIPELINE_REGISTRY.supported_tasks:
    PIPELINE_REGISTRY.register_pipeline(
        PIPELINE_TASK, pipeline_class=SummarizationPipeline, pt_model=AutoModelForSeq2SeqLM, type="text"
    )

__all__ = [
    "PyramidionConfig",
    "PyramidionEncoderOutput",
    "PyramidionForConditionalGeneration",
    "PyramidionModel",
    "PyramidionPreTrainedModel",
    "PyramidionSeq2SeqLMOutput",
    "PyramidionSeq2SeqModelOutput",
    "SummarizationPipeline",
    "convert_checkpoint",
]
