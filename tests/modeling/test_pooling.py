"""Tests for pyramidion_hf.modeling.pooling: scorers, pooling layer, padding invariance, DDP, learning."""

from __future__ import annotations

import math
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pyramidion_hf.modeling.pooling import SCORERS, PoolingOutput, RepresentationPooling
from pyramidion_hf.topk import TOPK_OPERATORS

TOPKS = ("successive_halving", "hard", "iterative")
DETERMINISTIC = tuple(s for s in SCORERS if s != "random")
PARAMETRIC = ("linear", "nonlinear")


def _layer_norm_hidden(batch: int, length: int, d: int, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return nn.functional.layer_norm(torch.randn(batch, length, d, generator=gen), (d,))


def _attention_received(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A PoWER-style input: column sums of a (differentiable) single-head self-attention over real tokens."""
    logits = hidden @ hidden.transpose(1, 2) / math.sqrt(hidden.shape[-1])
    probs = logits.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1) * mask[:, :, None]
    return probs.sum(dim=1)


def _batch(seed: int = 0, batch: int = 3, length: int = 19, d: int = 16):
    hidden = _layer_norm_hidden(batch, length, d, seed)
    mask = torch.ones(batch, length, dtype=torch.bool)
    mask[1, 13:] = False
    mask[2, 5:] = False
    positions = torch.arange(length).expand(batch, length) * 2 + 7
    return hidden, mask, positions


def _pool(module: RepresentationPooling, hidden, mask, positions) -> PoolingOutput:
    att = _attention_received(hidden, mask) if module.needs_attention_received else None
    return module(hidden, mask, positions, attention_received=att)


@pytest.mark.parametrize("topk", TOPKS)
@pytest.mark.parametrize("scorer", SCORERS)
def test_forward_backward_shapes_and_grads(scorer: str, topk: str) -> None:
    torch.manual_seed(0)
    k, d = 4, 16
    hidden, mask, positions = _batch(d=d)
    hidden.requires_grad_(True)
    module = RepresentationPooling(d, k, scorer=scorer, topk=topk)
    out = _pool(module, hidden, mask, positions)
    batch = hidden.shape[0]
    assert out.hidden.shape == (batch, k, d)
    for name in ("mask", "positions", "scores", "weights", "indices"):
        assert getattr(out, name).shape == (batch, k), name
    assert out.mask.dtype == torch.bool
    assert out.positions.dtype == torch.long and out.indices.dtype == torch.long
    # 5 real tokens in the last row: strided pooling uses windows of ceil(5/4) = 2, so only 3 are filled
    last = [True, True, True, False] if scorer in ("mean", "max") else [True] * 4
    assert out.mask.tolist() == [[True] * 4, [True] * 4, last]
    target = torch.randn(batch, k, d, generator=torch.Generator().manual_seed(1))
    (out.hidden * target).sum().backward()
    assert hidden.grad is not None and torch.isfinite(hidden.grad).all()
    assert hidden.grad.abs().sum() > 0
    params = list(module.parameters())
    assert len(params) == {"linear": 2, "nonlinear": 4}.get(scorer, 0)
    for p in params:
        assert p.grad is not None and torch.isfinite(p.grad).all()
        if topk == "hard":  # hard selection passes no gradient to the scorer: only the zero-valued DDP anchor
            assert torch.count_nonzero(p.grad) == 0
    if scorer in PARAMETRIC and topk != "hard":
        assert sum(p.grad.abs().sum() for p in params) > 0


@pytest.mark.parametrize("topk", TOPKS)
@pytest.mark.parametrize("scorer", PARAMETRIC)
def test_params_reached_when_n_not_above_k(scorer: str, topk: str) -> None:
    hidden, mask, positions = _batch(length=6)
    hidden.requires_grad_(True)
    module = RepresentationPooling(16, 8, scorer=scorer, topk=topk)
    out = module(hidden, mask, positions)
    out.hidden.sum().backward()
    assert all(p.grad is not None for p in module.parameters())


@pytest.mark.parametrize("topk", TOPKS)
@pytest.mark.parametrize("scorer", SCORERS)
def test_positions_are_gathered_through_indices(scorer: str, topk: str) -> None:
    torch.manual_seed(0)
    hidden, mask, _ = _batch()
    gen = torch.Generator().manual_seed(3)
    positions = torch.stack([torch.randperm(1000, generator=gen)[:19] for _ in range(3)])
    out = _pool(RepresentationPooling(16, 4, scorer=scorer, topk=topk), hidden, mask, positions)
    real = out.mask
    assert (out.indices[~real] == -1).all() and (out.positions[~real] == -1).all()
    assert (out.indices[real] >= 0).all()
    expected = positions.gather(1, out.indices.clamp(min=0))
    assert torch.equal(out.positions[real], expected[real])
    # a dominating input is always a real token
    assert mask.gather(1, out.indices.clamp(min=0))[real].all()


def test_positions_default_to_arange_and_mask_defaults_to_all_real() -> None:
    hidden = _layer_norm_hidden(2, 12, 16)
    module = RepresentationPooling(16, 3, scorer="index", topk="hard")
    out = module(hidden)
    assert out.positions.tolist() == [[0, 4, 8], [0, 4, 8]]
    assert out.mask.all()


@pytest.mark.parametrize("scorer", ["mean", "max"])
def test_strided_pooling_matches_hand_computation(scorer: str) -> None:
    d, k = 5, 4
    hidden = _layer_norm_hidden(2, 12, d, seed=4)
    mask = torch.zeros(2, 12, dtype=torch.bool)
    mask[0, :10] = True  # 10 real tokens: window ceil(10/4) = 3 -> windows [0,3) [3,6) [6,9) [9,10)
    mask[1, :9] = True  # 9 real tokens: window 3 -> three full windows, the fourth slot is masked
    hidden[~mask] = 1e4  # padding must never leak into a window
    out = RepresentationPooling(d, k, scorer=scorer)(hidden, mask, torch.arange(12).expand(2, 12) + 100)
    reduce = (lambda x: x.mean(0)) if scorer == "mean" else (lambda x: x.max(0).values)
    windows = [[(0, 3), (3, 6), (6, 9), (9, 10)], [(0, 3), (3, 6), (6, 9)]]
    for b, spans in enumerate(windows):
        for j, (lo, hi) in enumerate(spans):
            torch.testing.assert_close(out.hidden[b, j], reduce(hidden[b, lo:hi]))
    assert out.mask.tolist() == [[True] * 4, [True, True, True, False]]
    assert torch.equal(out.hidden[1, 3], torch.zeros(d))
    assert out.indices.tolist() == [[0, 3, 6, 9], [0, 3, 6, -1]]
    assert out.positions.tolist() == [[100, 103, 106, 109], [100, 103, 106, -1]]
    t = 1 / 3
    torch.testing.assert_close(out.weights, torch.tensor([[t, t, t, 1.0], [t, t, t, 0.0]]))
    assert torch.equal(out.scores, torch.zeros(2, k))


def test_max_pooling_gradient_reaches_the_argmax_only() -> None:
    hidden = torch.tensor([[[1.0], [3.0], [2.0], [0.0]]], requires_grad=True)
    out = RepresentationPooling(1, 2, scorer="max")(hidden, torch.ones(1, 4, dtype=torch.bool))
    assert out.hidden.flatten().tolist() == [3.0, 2.0]
    out.hidden.sum().backward()
    assert hidden.grad.flatten().tolist() == [0.0, 1.0, 1.0, 0.0]


@pytest.mark.parametrize("topk", TOPKS)
def test_index_scorer_picks_every_stride_th_token(topk: str) -> None:
    hidden = _layer_norm_hidden(3, 16, 8, seed=5)
    mask = torch.ones(3, 16, dtype=torch.bool)
    mask[1, 12:] = False  # 12 real tokens -> stride 3
    mask[2, 10:] = False  # 10 real tokens, stride ceil(10/4) = 3: four windows cover the whole document
    module = RepresentationPooling(8, 4, scorer="index", topk=topk)
    scores = module.score(hidden, mask)
    assert scores[0].nonzero().flatten().tolist() == [0, 4, 8, 12]
    assert scores[2].nonzero().flatten().tolist() == [0, 3, 6, 9]
    out = module(hidden, mask, torch.arange(16).expand(3, 16))
    # soft operators: the 1-scored tokens are the dominating inputs
    assert out.indices.tolist() == [[0, 4, 8, 12], [0, 3, 6, 9], [0, 3, 6, 9]]
    if topk == "hard":
        torch.testing.assert_close(out.hidden[0], hidden[0, [0, 4, 8, 12]])


def test_linear_scorer_with_hand_set_weights_picks_expected_tokens() -> None:
    d, n = 8, 16
    hidden = _layer_norm_hidden(2, n, d, seed=6)
    hidden[..., 0] = -10.0
    chosen = [[1, 5, 6, 14], [0, 2, 9, 15]]
    for b, idx in enumerate(chosen):
        hidden[b, idx, 0] = torch.tensor([16.0, 10.0, 14.0, 12.0])  # distinct: iterative softmax splits ties
    for topk in TOPKS:
        module = RepresentationPooling(d, 4, scorer="linear", topk=topk, temperature=0.1)
        with torch.no_grad():
            module.score_proj.weight.zero_()
            module.score_proj.weight[0, 0] = 2.0
            module.score_proj.bias.fill_(0.5)
        out = module(hidden, torch.ones(2, n, dtype=torch.bool), torch.arange(n).expand(2, n))
        assert out.indices.tolist() == chosen, topk
        expected = torch.stack([hidden[b, idx] for b, idx in enumerate(chosen)])
        torch.testing.assert_close(out.hidden, expected, atol=1e-4, rtol=0)
        torch.testing.assert_close(out.scores, 2 * expected[..., 0] + 0.5, atol=1e-3, rtol=0)


@pytest.mark.parametrize(
    "options",
    [
        {"temperature": 0.3, "sort": False, "weighting": "peaked"},
        {"temperature": 2.0, "sort": True, "weighting": "sigmoid"},
    ],
)
def test_operator_options_are_forwarded(options: dict) -> None:
    hidden, mask, positions = _batch(length=23)
    module = RepresentationPooling(16, 4, scorer="linear", **options)
    out = module(hidden, mask, positions)
    scores = module.score(hidden, mask)
    expected = TOPK_OPERATORS["successive_halving"](hidden, scores, 4, mask, **options)
    for name in ("hidden", "scores", "mask", "indices", "weights"):
        torch.testing.assert_close(getattr(out, name), getattr(expected, name), msg=name)
    default = RepresentationPooling(16, 4, scorer="linear")
    default.load_state_dict(module.state_dict())
    assert not torch.allclose(default(hidden, mask, positions).weights, out.weights)
    iterative = RepresentationPooling(16, 4, scorer="linear", topk="iterative", temperature=0.3)
    iterative.load_state_dict(module.state_dict())
    expected = TOPK_OPERATORS["iterative"](hidden, scores, 4, mask, temperature=0.3)
    torch.testing.assert_close(iterative(hidden, mask, positions).hidden, expected.hidden)


def test_embedding_scorer_reads_one_coordinate() -> None:
    hidden = _layer_norm_hidden(2, 10, 6, seed=7)
    module = RepresentationPooling(6, 3, scorer="embedding", embedding_index=4, topk="hard")
    torch.testing.assert_close(module.score(hidden, torch.ones(2, 10, dtype=torch.bool)), hidden[..., 4])
    out = module(hidden)
    assert out.indices.tolist() == hidden[..., 4].topk(3).indices.sort().values.tolist()
    assert list(module.parameters()) == []


def test_power_scorer_uses_attention_received() -> None:
    hidden = _layer_norm_hidden(1, 8, 4, seed=8)
    att = torch.tensor([[0.1, 3.0, 0.2, 0.3, 2.0, 0.0, 0.4, 1.0]])
    out = RepresentationPooling(4, 3, scorer="power", topk="hard")(hidden, None, None, attention_received=att)
    assert out.indices.tolist() == [[1, 4, 7]]
    torch.testing.assert_close(out.scores, torch.tensor([[3.0, 2.0, 1.0]]))


def test_random_scorer_is_uniform_and_seeded() -> None:
    hidden = _layer_norm_hidden(4, 256, 4)
    module = RepresentationPooling(4, 8, scorer="random")
    mask = torch.ones(4, 256, dtype=torch.bool)
    torch.manual_seed(0)
    s1 = module.score(hidden, mask)
    torch.manual_seed(0)
    assert torch.equal(s1, module.score(hidden, mask))
    assert s1.min() >= 0 and s1.max() < 1 and abs(s1.mean().item() - 0.5) < 0.03


@pytest.mark.parametrize("topk", TOPKS)
@pytest.mark.parametrize("scorer", DETERMINISTIC)
def test_padding_invariance(scorer: str, topk: str) -> None:
    torch.manual_seed(0)
    d, k = 16, 4
    module = RepresentationPooling(d, k, scorer=scorer, topk=topk).eval()
    alone = _layer_norm_hidden(1, 13, d, seed=9)
    other = _layer_norm_hidden(1, 24, d, seed=10)
    batch = torch.cat([torch.cat([alone, 50 * torch.randn(1, 11, d)], dim=1), other])  # loud padding
    mask = torch.ones(2, 24, dtype=torch.bool)
    mask[0, 13:] = False
    positions = torch.arange(24).expand(2, 24)
    out_b = _pool(module, batch, mask, positions)
    out_a = _pool(module, alone, torch.ones(1, 13, dtype=torch.bool), positions[:1, :13])
    for name in PoolingOutput._fields:
        torch.testing.assert_close(
            getattr(out_b, name)[:1], getattr(out_a, name), atol=1e-5, rtol=1e-5, msg=name
        )


@pytest.mark.parametrize("topk", TOPKS)
@pytest.mark.parametrize("scorer", SCORERS)
def test_masked_tokens_never_selected_while_real_ones_remain(scorer: str, topk: str) -> None:
    torch.manual_seed(0)
    d, n = 8, 20
    hidden = _layer_norm_hidden(2, n, d, seed=11)
    mask = torch.zeros(2, n, dtype=torch.bool)
    mask[0, ::3] = True  # 7 real tokens, scattered
    mask[1, 15:] = True  # 5 real tokens at the end
    hidden[~mask] = 30.0  # padding would win every score if it were not masked
    module = RepresentationPooling(d, 5, scorer=scorer, topk=topk, embedding_index=0)
    out = _pool(module, hidden, mask, torch.arange(n).expand(2, n))
    # strided pooling of 7 real tokens into windows of ceil(7/5) = 2 fills 4 slots
    first = [True] * 4 + [False] if scorer in ("mean", "max") else [True] * 5
    assert out.mask.tolist() == [first, [True] * 5]
    assert mask.gather(1, out.indices.clamp(min=0))[out.mask].all()
    assert (out.hidden.abs() < 30.0).all()


@pytest.mark.parametrize("topk", TOPKS)
@pytest.mark.parametrize("scorer", SCORERS)
def test_short_input_is_identity_plus_masked_padding(scorer: str, topk: str) -> None:
    d, n, k = 8, 5, 8
    hidden = _layer_norm_hidden(2, n, d, seed=12)
    mask = torch.ones(2, n, dtype=torch.bool)
    mask[1, 3:] = False
    positions = torch.arange(n).expand(2, n) + 40
    out = _pool(RepresentationPooling(d, k, scorer=scorer, topk=topk), hidden, mask, positions)
    assert out.mask.tolist() == [[True] * 5 + [False] * 3, [True] * 3 + [False] * 5]
    torch.testing.assert_close(out.hidden[0, :5], hidden[0])
    torch.testing.assert_close(out.hidden[1, :3], hidden[1, :3])
    assert torch.equal(out.hidden[~out.mask], torch.zeros(8, d))
    assert out.positions.tolist() == [[40, 41, 42, 43, 44, -1, -1, -1], [40, 41, 42, -1, -1, -1, -1, -1]]
    torch.testing.assert_close(out.weights, out.mask.float())


@pytest.mark.parametrize("scorer", SCORERS)
def test_bfloat16_keeps_dtype_and_grads(scorer: str) -> None:
    hidden, mask, positions = _batch()
    hidden = hidden.to(torch.bfloat16).requires_grad_(True)
    module = RepresentationPooling(16, 4, scorer=scorer).to(torch.bfloat16)
    att = _attention_received(hidden.float(), mask) if scorer == "power" else None
    out = module(hidden, mask, positions, attention_received=att)
    assert out.hidden.dtype == out.scores.dtype == out.weights.dtype == torch.bfloat16
    out.hidden.float().sum().backward()
    assert torch.isfinite(hidden.grad).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in module.parameters())
    reference = RepresentationPooling(16, 4, scorer=scorer)
    reference.load_state_dict(module.state_dict())
    if scorer in ("mean", "max", "index", "embedding"):  # no scorer arithmetic: matches fp32 up to rounding
        expected = reference(hidden.detach().float(), mask, positions)
        torch.testing.assert_close(out.hidden.float(), expected.hidden, atol=2e-2, rtol=2e-2)


def test_initial_scores_are_spread_but_soft() -> None:
    torch.manual_seed(0)
    d = 64
    hidden = _layer_norm_hidden(4, 64, d, seed=13)
    for scorer in PARAMETRIC:
        module = RepresentationPooling(d, 32, scorer=scorer)  # one halving round: weights = pair sigmoids
        scores = module.score(hidden, torch.ones(4, 64, dtype=torch.bool))
        assert 0.6 < scores.std().item() < 1.6, scorer
        with torch.no_grad():
            module.score_proj.weight.fill_(3.0)
        module.reset_parameters()
        assert 0.5 / math.sqrt(d) < module.score_proj.weight.std().item() < 2.5 / math.sqrt(d)
        assert torch.equal(module.score_proj.bias, torch.zeros(1))
        out = module(hidden)
        w = out.weights[out.mask]
        # a soft tournament: clear winners on average, but no output is already one-hot
        assert 0.65 < w.mean().item() < 0.9 and w.max().item() < 0.9999, scorer


@pytest.mark.parametrize("scorer", ["linear", "nonlinear", "embedding"])
def test_normalized_scorer_input_ignores_the_residual_scale(scorer: str) -> None:
    """Pre-norm residual streams grow in scale: with normalize_scorer_input the scores see a unit-scale
    (layer-normalized) copy, so a 10x larger stream gives the same scores, as soft as at init, while the kept
    vectors stay the unnormalized inputs."""
    torch.manual_seed(0)
    hidden = _layer_norm_hidden(4, 64, 64, seed=13) * 2.5 + 0.3
    module = RepresentationPooling(64, 32, scorer=scorer, normalize_scorer_input=True)
    mask = torch.ones(4, 64, dtype=torch.bool)
    scores = module.score(hidden, mask)
    torch.testing.assert_close(module.score(hidden * 10, mask), scores, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(scores, module.score(F.layer_norm(hidden, (64,)), mask), atol=1e-5, rtol=1e-5)
    raw = RepresentationPooling(64, 32, scorer=scorer)
    raw.load_state_dict(module.state_dict())  # same parameters: the flag adds none
    if scorer == "linear":
        assert 0.6 < scores.std().item() < 1.6
        assert raw.score(hidden, mask).std().item() > 2 * scores.std().item()
    if scorer == "nonlinear":  # the raw stream saturates tanh
        def saturated(x: torch.Tensor) -> float:
            return (module.dense(x).abs() > 2).float().mean().item()

        assert saturated(hidden) > 3 * saturated(F.layer_norm(hidden, (64,)))
    out = module(hidden)
    kept = hidden.gather(1, out.indices[..., None].expand(-1, -1, 64))
    assert (out.hidden - kept).abs().mean() < 0.5 * kept.abs().mean()  # outputs in the input's scale
    assert "normalize_scorer_input=True" in repr(module)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"scorer": "mlp"}, "linear, nonlinear, power, embedding, random, index, mean, max"),
        ({"topk": "soft"}, "successive_halving"),
        ({"k": 0}, "k .*>= 1"),
        ({"temperature": 0.0}, "temperature"),
        ({"weighting": "softmax"}, "sigmoid, peaked"),
        ({"scorer": "embedding", "embedding_index": 16}, r"\[0, 15\]"),
    ],
)
def test_constructor_errors(kwargs: dict, match: str) -> None:
    args = {"d_model": 16, "k": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        RepresentationPooling(**args)


def test_topk_names_are_the_operator_registry() -> None:
    assert set(TOPKS) <= set(TOPK_OPERATORS)
    for topk in TOPK_OPERATORS:
        RepresentationPooling(8, 2, topk=topk)


def test_forward_errors() -> None:
    hidden = _layer_norm_hidden(2, 6, 16)
    mask = torch.ones(2, 6, dtype=torch.bool)
    module = RepresentationPooling(16, 2)
    with pytest.raises(ValueError, match="d_model=16"):
        module(hidden[..., :8], mask)
    with pytest.raises(ValueError, match="d_model=16"):
        module(hidden[0], mask)
    with pytest.raises(ValueError, match="mask must have shape"):
        module(hidden, mask[:, :5])
    with pytest.raises(ValueError, match="positions must have shape"):
        module(hidden, mask, torch.arange(5).expand(2, 5))
    power = RepresentationPooling(16, 2, scorer="power")
    assert power.needs_attention_received and not module.needs_attention_received
    with pytest.raises(ValueError, match="needs attention_received"):
        power(hidden, mask)
    with pytest.raises(ValueError, match="attention_received must have shape"):
        power(hidden, mask, attention_received=torch.ones(2, 7))


class _EncoderWithPooling(nn.Module):
    """A layer before the pooling, as in the model: DDP only checks for unused parameters if some are used."""

    def __init__(self, scorer: str, topk: str) -> None:
        super().__init__()
        self.layer = nn.Linear(8, 8)
        self.pool = RepresentationPooling(8, 4, scorer=scorer, topk=topk)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.pool(nn.functional.layer_norm(self.layer(hidden), (8,))).hidden


def test_ddp_without_unused_parameters_runs_every_scorer_and_operator() -> None:
    """World size 1 over gloo: DDP's reducer raises on step 2 if a parameter got no gradient in step 1."""
    if dist.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    store = tempfile.NamedTemporaryFile(delete=False)
    store.close()
    dist.init_process_group("gloo", init_method=f"file://{store.name}", rank=0, world_size=1)
    try:
        for scorer in PARAMETRIC:
            for topk in TOPKS:
                for length in (12, 3):  # n > k and n <= k (identity: no tournament at all)
                    model = nn.parallel.DistributedDataParallel(
                        _EncoderWithPooling(scorer, topk), find_unused_parameters=False
                    )
                    for step in range(3):
                        model(_layer_norm_hidden(2, length, 8, seed=step)).sum().backward()
    finally:
        dist.destroy_process_group()
        os.unlink(store.name)


def _marker_batch(gen: torch.Generator, batch: int = 16, n: int = 32, d: int = 16, n_markers: int = 4):
    """Hidden states whose feature 0 is 1 on `n_markers` random tokens per sequence and 0 elsewhere."""
    hidden = torch.randn(batch, n, d, generator=gen)
    markers = torch.rand(batch, n, generator=gen).argsort(dim=1)[:, :n_markers]
    is_marker = torch.zeros(batch, n, dtype=torch.bool).scatter(1, markers, True)
    hidden[..., 0] = is_marker.float()
    return hidden, is_marker


def _recall(module: RepresentationPooling, hidden: torch.Tensor, is_marker: torch.Tensor) -> float:
    with torch.no_grad():
        out = module(hidden)
    return (is_marker.gather(1, out.indices).float().sum() / is_marker.sum()).item()


@pytest.mark.parametrize("topk", ["successive_halving", "hard"])
def test_linear_scorer_learns_to_keep_marked_tokens_only_with_soft_topk(topk: str) -> None:
    """Objective: maximise the pooled vectors' marker feature. SH top-k trains the scorer; hard does not."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    module = RepresentationPooling(16, 4, scorer="linear", topk=topk)
    initial = [p.detach().clone() for p in module.parameters()]
    test_hidden, test_marker = _marker_batch(torch.Generator().manual_seed(123), batch=64)
    before = _recall(module, test_hidden, test_marker)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.05)
    for _ in range(150):
        hidden, _ = _marker_batch(gen)
        out = module(hidden)
        loss = -(out.hidden[..., 0] * out.mask).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = _recall(module, test_hidden, test_marker)
    assert before < 0.35  # chance level is k/n = 0.125
    if topk == "successive_halving":
        assert after > 0.95, (before, after)
    else:
        assert after == before
        assert all(torch.equal(p, q) for p, q in zip(module.parameters(), initial, strict=True))
