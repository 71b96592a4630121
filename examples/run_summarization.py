#!/usr/bin/env python
"""Train, evaluate and predict with a Pyramidion summarizer through `Seq2SeqTrainer`.

In the spirit of transformers' `examples/pytorch/summarization/run_summarization.py`, for models built from a
preset (`--preset pyramidion --config_overrides "d_model=256,decoder_layers=2" --tokenizer_name tok/`) or
loaded from a folder (`--model_name_or_path`). ROUGE-1/2/L/Lsum carry 95% bootstrap confidence intervals and
are computed offline by `pyramidion_hf.training.metrics.rouge_with_ci` (what the evaluate module
`metrics_rouge_ci` wraps), which also scores the Lead baseline (`--lead_baseline`).

    python examples/run_summarization.py --preset pyramidion --tokenizer_name outputs/tok \\
        --dataset aclsum --do_train --do_predict --predict_with_generate \\
        --output_dir outputs/run --max_steps 200

Multi-process (CPU over gloo, or GPUs):
    torchrun --standalone --nproc_per_node 2 examples/run_summarization.py ...
    accelerate launch --config_file examples/configs/multi_gpu.yaml examples/run_summarization.py ...

Rank 0 writes to --output_dir: the model + tokenizer, checkpoint-N/, {train,eval,predict,lead}_results.json,
all_results.json, generated_predictions.jsonl (id, prediction, reference) and data_report.json (examples
kept, skipped and truncated per split). A rerun with the same --output_dir resumes from its last complete
checkpoint (--overwrite_output_dir trains from scratch). --push_to_hub exports output_dir/hub with
`pyramidion_hf.hub.export_repo` (remote code, model card with the test ROUGE, CIs and Lead baseline) and
uploads it to --hub_model_id once, at the end.

The work is done by `pyramidion_hf.training`: arguments (ModelArguments, DataArguments), model_setup,
checkpoints (resume), splits (features + data reports), summarization (the stages) and results (card, Hub).
"""

from __future__ import annotations

from pyramidion_hf.cli_errors import cli_main
from pyramidion_hf.training.arguments import parse_args
from pyramidion_hf.training.launch import (
    check_world_size,
    end_process_group,
    setup_logging,
    use_cpu_without_accelerator,
)
from pyramidion_hf.training.summarization import RunResult, run


@cli_main("run_summarization.py")
def main(argv: list[str]) -> RunResult:
    """Parse the arguments, set the processes up and run the stages; ends a multi-process group at the end.

    An expected failure (bad arguments, a folder or file that does not fit, no Hub) is one line on stderr
    and exit status 2; --debug shows its traceback."""
    use_cpu_without_accelerator()  # before the arguments: they pick the device
    model_args, data_args, training_args = parse_args(argv)
    setup_logging(training_args)
    check_world_size(training_args)
    try:
        return run(model_args, data_args, training_args)
    finally:
        end_process_group()


if __name__ == "__main__":
    main()
