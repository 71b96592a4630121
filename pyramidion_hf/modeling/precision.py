"""fp32 islands in a bf16 / fp16 model: the pooling scores and the logits, where 8 mantissa bits decide.

bf16 rounds a value to 1/256 of its magnitude: logits near 10 to steps of 0.06, so the top two tokens of an
unsure step tie or swap (measured on the demo model: 8 of 100 greedy summaries identical to fp32's with bf16
logits, 52 with fp32 logits from the same bf16 weights), and pooling scores tie and flip selections.

A decode step (one position per row, no gradients) reads the whole (vocab, d) head for a few rows: there the
bf16 matmul runs first and only its `REFINED_CANDIDATES` best tokens per row are recomputed in fp32, which
costs a gather instead of converting the matrix (results/logits_head.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Weight rows converted to fp32 at a time: 1024 x d_model fp32 (3 MiB at d=768) stays in the CPU's cache, so
# a (vocab, d) bf16 matrix is read from memory once and never copied whole to fp32.
FP32_CHUNK_ROWS = 1024
# Tokens per row whose decode-step logits are recomputed exactly in fp32: every candidate of greedy, beam (up
# to 64 beams) and top-k <= 128 sampling; the rest keep the bf16 matmul's value (relative error <= 2**-9).
REFINED_CANDIDATES = 128


def through_module_hooks(
    compute: Callable[[nn.Linear, Tensor], Tensor],
) -> Callable[[nn.Linear, Tensor], Tensor]:
    """`compute(layer, hidden)` run inside the layer's accelerate hook, as `layer(hidden)` would be: offloaded
    weights are loaded and inputs moved to the layer's device first (`device_map`, `cpu_offload`)."""

    @functools.wraps(compute)
    def hooked(layer: nn.Linear, hidden: Tensor) -> Tensor:
        hook = getattr(layer, "_hf_hook", None)
        if hook is None:
            return compute(layer, hidden)
        (hidden,), _ = hook.pre_forward(layer, hidden)
        return hook.post_forward(layer, compute(layer, hidden))

    return hooked


@through_module_hooks
def fp32_linear(layer: nn.Linear, hidden: Tensor) -> Tensor:
    """`layer` applied to hidden (..., d_in) -> (..., d_out) in fp32 arithmetic whatever the dtype of the
    weights, the input or an enclosing autocast; a weight of many rows is converted chunk by chunk."""
    with torch.autocast(hidden.device.type, enabled=False):
        hidden = hidden.float()
        parts = [F.linear(hidden, rows.float()) for rows in layer.weight.split(FP32_CHUNK_ROWS)]
        out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)
        return out if layer.bias is None else out + layer.bias.float()


@through_module_hooks
def refined_decode_logits(head: nn.Linear, hidden: Tensor) -> Tensor:
    """fp32 logits (B, 1, vocab) of a decode step's hidden (B, 1, d) through a bf16 / fp16 head: the matmul in
    the head's dtype, then its `REFINED_CANDIDATES` largest logits per row recomputed exactly in fp32."""
    weight = head.weight
    with torch.autocast(hidden.device.type, enabled=False):
        rough = F.linear(hidden.to(weight.dtype), weight, head.bias).float()
        top = rough.topk(min(REFINED_CANDIDATES, weight.shape[0]), dim=-1).indices  # (B, 1, m)
        rows = weight[top].float()  # (B, 1, m, d)
        exact = (rows @ hidden.float()[..., None]).squeeze(-1)
        if head.bias is not None:
            exact = exact + head.bias[top].float()
        return rough.scatter(-1, top, exact)


def lm_head_logits(head: nn.Linear, hidden: Tensor, for_loss: bool = False) -> Tensor:
    """The LM head's logits (B, t, vocab) of hidden (B, t, d), in fp32 wherever they pick tokens: with bf16 /
    fp16 weights, and under autocast without gradients (generation and evaluation, e.g. the Trainer's `--bf16`
    predict, which runs the forward in accelerate's autocast). In a training step under autocast they stay in
    autocast's dtype, as the step's speed needs. A decode step of bf16 / fp16 weights (one position, no
    gradients, not `for_loss`) refines the bf16 logits (`refined_decode_logits`); a loss sees exact ones."""
    device = hidden.device.type
    if torch.is_autocast_enabled(device) and torch.is_grad_enabled():
        return head(hidden)
    if head.weight.dtype != torch.float32:
        if hidden.shape[-2] == 1 and not (torch.is_grad_enabled() or for_loss):
            return refined_decode_logits(head, hidden)
        return fp32_linear(head, hidden)
    with torch.autocast(device, enabled=False):  # fp32 weights: the module itself, so its hooks still run
        return head(hidden.float())
