"""MSR-DARTS: spectral maths, spectral normalisation, stable-rank derivation, runs."""
from __future__ import annotations

import dataclasses
import json
import math
import warnings
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nasbench_eval import run
from nasbench_eval.config import RunConfig
from nasbench_eval.errors import NasbenchEvalError
from nasbench_eval.methods import GradientMethod, create_method
from nasbench_eval.resolve import resolve_config
from nasbench_eval.spaces import DartsSupernet, SearchSpace, load_space
from nasbench_eval.spaces.darts.genotype import discrete_weights
from nasbench_eval.spectral import (
    conv_stable_rank,
    operator_singular_values,
    operator_spectral_norm,
    raw_weight,
    spectral_norm_of,
    spectral_normalize_conv,
    stable_rank_matrix,
    stable_rank_operator,
)
from helpers import read_metrics

CONV_OPS = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")


# ----------------------------------------------------------------------------- helpers

def operator_matrix(fn, in_shape):
    """The explicit matrix of a linear map on images: column j = fn(j-th basis image)."""
    n = math.prod(in_shape)
    basis = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    return fn(basis).reshape(n, -1).T


def msr_method(space="darts", layers=3, channels=4, seed=0, **options):
    """A set-up MSR method on a tiny supernet (1 input channel, 10 classes)."""
    m = create_method("msr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dropped-ops warning is tested on its own
        sp = m.adapt_space(load_space(space) if isinstance(space, str) else space)
    cfg = resolve_config(RunConfig(method="msr", space="darts", layers=layers,
                                   channels=channels, epochs=2, seed=seed,
                                   method_options=options))
    torch.manual_seed(seed)
    net = DartsSupernet(sp, channels=channels, layers=layers, num_classes=10, in_channels=1)
    m.setup(net, sp, cfg, steps_per_epoch=2)
    return m, net


def batch(n=8, size=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 1, size, size, generator=g), torch.randint(0, 10, (n,), generator=g)


def all_candidate_convs(net):
    for cell in net.cells:
        for edge in cell.edges:
            for op in edge.ops:
                yield from (m for m in op.modules() if isinstance(m, nn.Conv2d))


# ----------------------------------------------------------------------------- spectral maths

@pytest.mark.parametrize("c_out,c_in,k,stride,dilation,groups,size", [
    (3, 2, 3, 1, 1, 1, 6),  # dense 3x3
    (4, 4, 3, 1, 1, 4, 6),  # depthwise 3x3 (per-frequency diagonal matrices)
    (4, 4, 3, 1, 2, 4, 8),  # depthwise dilated (dil_conv_3x3's first conv)
    (4, 4, 5, 2, 2, 4, 8),  # depthwise, dilated, stride 2 (reduction edge)
    (3, 2, 3, 2, 1, 1, 6),  # dense, stride 2 (polyphase)
    (2, 2, 5, 1, 1, 1, 4),  # kernel as large as the grid: taps wrap around
])
def test_fft_singular_values_match_explicit_circular_operator(c_out, c_in, k, stride, dilation,
                                                              groups, size):
    # Sedghi et al.'s formula is exact for CIRCULAR convolution, so the reference operator is
    # a circularly padded conv (a zero-padded one differs at the border)
    torch.manual_seed(1)
    w = torch.randn(c_out, c_in // groups, k, k, dtype=torch.float64)
    p = dilation * (k - 1) // 2

    def conv(x):
        return F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), w, None, stride, 0,
                        dilation, groups)

    explicit = torch.linalg.svdvals(operator_matrix(conv, (c_in, size, size)))
    fft = operator_singular_values(w, size, size, stride, dilation, groups)
    n = min(len(explicit), len(fft))  # the longer list only adds zeros
    a = explicit.sort(descending=True).values
    b = fft.sort(descending=True).values
    assert torch.allclose(a[:n], b[:n], atol=1e-10)
    assert a[n:].abs().sum() < 1e-9 and b[n:].abs().sum() < 1e-9
    assert operator_spectral_norm(w, size, size, stride, dilation, groups) == pytest.approx(
        a[0].item(), rel=1e-10)
    assert stable_rank_operator(w, size, size, stride, dilation, groups).item() == pytest.approx(
        (a ** 2).sum().item() / a[0].item() ** 2, rel=1e-10)


@pytest.mark.parametrize("h,w", [(8, 8), (4, 6), (1, 1)])
def test_1x1_operator_stable_rank_is_hw_times_matrix_stable_rank(h, w):
    # the FFT of a 1x1 kernel is the same C_out x C_in matrix at every frequency: every
    # singular value of the matrix appears H*W times, the largest is unchanged
    torch.manual_seed(0)
    kernel = torch.randn(5, 3, 1, 1, dtype=torch.float64)
    matrix = kernel[:, :, 0, 0]
    s = torch.linalg.svdvals(matrix)
    assert stable_rank_matrix(matrix).item() == pytest.approx(
        ((s ** 2).sum() / s[0] ** 2).item(), rel=1e-12)
    sv = operator_singular_values(kernel, h, w)
    assert len(sv) == h * w * 3
    assert torch.allclose(sv.sort().values, s.repeat(h * w).sort().values, atol=1e-12)
    expected = h * w * stable_rank_matrix(kernel).item()
    assert stable_rank_operator(kernel, h, w).item() == pytest.approx(expected, rel=1e-10)
    # the method's cheap form for 1x1 convs (stride 1, no padding) is the same number
    assert conv_stable_rank(kernel, h, w).item() == pytest.approx(expected, rel=1e-10)


def test_1x1_conv_stable_rank_counts_the_sampled_pixels():
    # a strided 1x1 conv applies W to every other pixel: singular values repeated H'*W' times
    torch.manual_seed(0)
    kernel = torch.randn(4, 4, 1, 1, dtype=torch.float64)
    explicit = torch.linalg.svdvals(operator_matrix(
        lambda x: F.conv2d(x, kernel, None, 2), (4, 6, 6)))
    expected = ((explicit ** 2).sum() / explicit[0] ** 2).item()
    assert conv_stable_rank(kernel, 6, 6, stride=2).item() == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(9 * stable_rank_matrix(kernel).item(), rel=1e-10)


# ----------------------------------------------------------------------------- spectral norm

@pytest.mark.parametrize("c_in,c_out,k,stride,dilation,groups", [
    (4, 4, 3, 1, 1, 4),  # depthwise
    (4, 4, 5, 1, 2, 4),  # depthwise, dilated
    (3, 5, 3, 1, 1, 1),  # dense
    (4, 4, 3, 2, 1, 4),  # depthwise, stride 2
    (4, 4, 5, 2, 2, 4),  # depthwise, dilated, stride 2
])
def test_power_iteration_reaches_the_fft_operator_norm_on_circular_convs(c_in, c_out, k, stride,
                                                                         dilation, groups):
    torch.manual_seed(3)
    coeff, size = 1.7, 8
    conv = nn.Conv2d(c_in, c_out, k, stride, dilation * (k - 1) // 2, dilation, groups,
                     bias=False, padding_mode="circular")
    exact_before = operator_spectral_norm(conv.weight, size, size, stride, dilation, groups)
    sn = spectral_normalize_conv(conv, coeff=coeff, n_power_iterations=5, seed=0)
    conv(torch.randn(2, c_in, size, size))  # learns the input shape
    for _ in range(40):  # training-mode reads iterate: 200 iterations
        _ = conv.weight
    conv.eval()
    assert sn.sigma(raw_weight(conv)).item() == pytest.approx(exact_before, rel=1e-2)
    after = operator_spectral_norm(conv.weight.detach(), size, size, stride, dilation, groups)
    assert after == pytest.approx(coeff, rel=1e-2)


def test_eval_mode_reuses_the_vectors_and_training_iterates():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, 1, 1, groups=4, bias=False)
    sn = spectral_normalize_conv(conv, n_power_iterations=1)
    conv(torch.randn(1, 4, 8, 8))
    v0 = sn.v.clone()
    conv.eval()
    w_eval = conv.weight.detach().clone()
    assert torch.equal(sn.v, v0) and torch.equal(conv.weight, w_eval)
    conv.train()
    _ = conv.weight
    assert not torch.equal(sn.v, v0)


def test_vectors_travel_in_the_state_dict():
    # a fresh conv that has never seen an input takes the saved vectors (whatever their shape)
    # and then normalises exactly like the saved one
    torch.manual_seed(0)
    a = nn.Conv2d(4, 4, 5, 2, 4, 2, groups=4, bias=False)
    spectral_normalize_conv(a, coeff=2.0, seed=1)
    a(torch.randn(1, 4, 8, 8))
    b = nn.Conv2d(4, 4, 5, 2, 4, 2, groups=4, bias=False)
    sn_b = spectral_normalize_conv(b, coeff=2.0, seed=2)
    b.load_state_dict(a.state_dict())
    assert sn_b.input_size == (8, 8) and sn_b.v.shape == (1, 4, 8, 8)
    a.eval()
    b.eval()
    assert torch.equal(a.weight, b.weight)
    b(torch.randn(1, 4, 8, 8))  # same input shape: the loaded vectors are kept
    assert torch.equal(spectral_norm_of(a).v, sn_b.v)


def test_every_candidate_conv_has_spectral_norm_coeff():
    coeff = 1.5
    m, net = msr_method(msr_coeff=coeff, msr_power_iters=5)
    net.train()
    with torch.no_grad():
        net(batch(2)[0], m.mixing_weights())  # every conv learns its real input shape
    convs = list(all_candidate_convs(net))
    assert len(convs) == m.n_normalized_convs == 3 * 14 * (4 + 4 + 2 + 2)
    for conv in convs:  # training-mode reads: 30 x 5 more power iterations (converged to
        for _ in range(30):  # ~0.5%; 4 reads leave ~7% on the slowest depthwise convs)
            _ = conv.weight
    net.eval()
    kinds = set()
    for conv in convs:
        w = conv.weight.detach().double()
        sn = spectral_norm_of(conv)
        if conv.kernel_size == (1, 1):
            norm = torch.linalg.matrix_norm(w[:, :, 0, 0], ord=2).item()
            kinds.add("1x1")
        else:  # the real (zero-padded, maybe strided) operator on the real input shape
            h, wd = sn.input_size
            norm = torch.linalg.matrix_norm(operator_matrix(
                lambda x: F.conv2d(x, w, None, conv.stride, conv.padding, conv.dilation,
                                   conv.groups), (conv.in_channels, h, wd)), ord=2).item()
            kinds.add((conv.stride, conv.dilation, conv.groups == conv.in_channels))
        assert norm == pytest.approx(coeff, rel=1e-2), conv
    # depthwise convs of stride 1 and 2, dilation 1 and 2, and the 1x1 convs were all seen
    assert {"1x1", ((1, 1), (1, 1), True), ((2, 2), (1, 1), True), ((1, 1), (2, 2), True),
            ((2, 2), (2, 2), True)} <= kinds
    # the stem and the cell preprocessing are left alone
    assert spectral_norm_of(net.stem[0]) is None
    for cell in net.cells:
        for conv in list(cell.pre0.modules()) + list(cell.pre1.modules()):
            if isinstance(conv, nn.Conv2d):
                assert spectral_norm_of(conv) is None


# ----------------------------------------------------------------------------- derivation

# normal cell, matrix stable rank of each candidate's last conv: columns sep3, sep5, dil3, dil5
NORMAL_RANKS = [
    [1.9, 1.5, 1.7, 1.8],    # e0  0->n0: best sep5 1.5
    [1.4, 1.6, 1.95, 1.85],  # e1  1->n0: best sep3 1.4
    [1.7, 1.9, 1.6, 1.8],    # e2  0->n1: best dil3 1.6
    [1.3, 1.4, 1.5, 1.2],    # e3  1->n1: best dil5 1.2
    [1.5, 1.25, 1.3, 1.9],   # e4  2->n1: best sep5 1.25
    [1.9, 2.0, 1.95, 1.99],  # e5  0->n2: best sep3 1.9
    [1.3, 1.2, 1.1, 1.4],    # e6  1->n2: best dil3 1.1
    [1.8, 1.7, 1.9, 1.75],   # e7  2->n2: best sep5 1.7
    [1.05, 1.2, 1.3, 1.4],   # e8  3->n2: best sep3 1.05
    [1.8, 1.9, 1.85, 1.95],  # e9  0->n3
    [1.6, 1.7, 1.8, 1.9],    # e10 1->n3
    [1.5, 1.4, 1.3, 1.15],   # e11 2->n3: best dil5 1.15
    [1.5, 1.6, 1.7, 1.8],    # e12 3->n3
    [1.3, 1.12, 1.6, 1.7],   # e13 4->n3: best sep5 1.12
]
NORMAL_GENOTYPE = (
    ("sep_conv_3x3", 1), ("sep_conv_5x5", 0),  # lowest first
    ("dil_conv_5x5", 1), ("sep_conv_5x5", 2),
    ("sep_conv_3x3", 3), ("dil_conv_3x3", 1),
    ("sep_conv_5x5", 4), ("dil_conv_5x5", 2),
)


def matrix_with_stable_rank(c, t, g):
    """A c x c matrix whose stable rank is t (1 <= t <= c): singular values 1, x, ..., x."""
    x = math.sqrt((t - 1.0) / (c - 1))
    s = torch.tensor([1.0] + [x] * (c - 1), dtype=torch.float64)
    q1, _ = torch.linalg.qr(torch.randn(c, c, generator=g, dtype=torch.float64))
    q2, _ = torch.linalg.qr(torch.randn(c, c, generator=g, dtype=torch.float64))
    return (q1 * s) @ q2.T


def set_last_conv_ranks(m, cell_index, ranks, g):
    cell_type, entries = m.candidates[cell_index]
    for e, k, _, conv in entries:
        w = raw_weight(conv)
        mat = matrix_with_stable_rank(w.shape[0], ranks[e][k], g)
        with torch.no_grad():
            w.copy_(mat.reshape(w.shape).to(w.dtype) * 0.3)  # the scale does not matter


def test_derivation_picks_lowest_stable_rank_ops_and_edges():
    m, net = msr_method()
    with torch.no_grad():
        net(batch(2)[0], m.mixing_weights())  # input sizes: normal 8x8, reduce 4x4 and 2x2
    assert [c for c, _ in m.candidates] == ["normal", "reduce", "reduce"]
    g = torch.Generator().manual_seed(0)
    set_last_conv_ranks(m, 0, NORMAL_RANKS, g)
    # reduction cells: two different tables (all values distinct, and so are their weighted
    # means: no ties for float noise to break); the genotype uses the mean over the cells
    r1 = [[1.0 + (37 * (4 * e + k) % 56) / 56 for k in range(4)] for e in range(14)]
    r2 = [[1.0 + ((19 * (4 * e + k) + 5) % 56) / 56 for k in range(4)] for e in range(14)]
    set_last_conv_ranks(m, 1, r1, g)
    set_last_conv_ranks(m, 2, r2, g)
    sr = m.stable_ranks()
    # operator stable rank = pixels * matrix stable rank (last 1x1 conv at the cell's output size)
    assert torch.allclose(sr["normal"], 64 * torch.tensor(NORMAL_RANKS, dtype=torch.float64),
                          rtol=1e-6)
    reduce_expected = (16 * torch.tensor(r1, dtype=torch.float64)
                       + 4 * torch.tensor(r2, dtype=torch.float64)) / 2
    assert torch.allclose(sr["reduce"], reduce_expected, rtol=1e-6)

    genotype = m.derive()
    assert genotype.normal == NORMAL_GENOTYPE
    # per cell (the paper): each cell instance its own topology from its own ranks
    assert [t for t, _ in genotype.cells] == ["normal", "reduce", "reduce"]
    assert genotype.cells[0][1] == NORMAL_GENOTYPE
    for i in (1, 2):
        own = m.cell_stable_ranks()[i][1]
        assert genotype.cells[i][1] == m._derive_cell("reduce", own)
    assert genotype.cells[1][1] != genotype.cells[2][1]
    d = genotype.to_dict()
    assert d["cells"][1] == {"type": "reduce", "pairs": [list(p) for p in genotype.cells[1][1]]}
    assert m.space.genotype_from_dict(d) == genotype  # readers take the shared genotype
    assert genotype.normal_concat == genotype.reduce_concat == (2, 3, 4, 5)
    # reduce: the same rule, written out on the averaged table
    space = m.space
    for node in range(4):
        ids = [e for e, (_, tgt) in enumerate(space.edges) if tgt == node]
        best = {e: min(range(4), key=lambda k: reduce_expected[e, k].item()) for e in ids}
        top = sorted(ids, key=lambda e: reduce_expected[e, best[e]].item())[:2]
        assert genotype.reduce[2 * node: 2 * node + 2] == tuple(
            (CONV_OPS[best[e]], space.edges[e][0]) for e in top)


# ----------------------------------------------------------------------------- training

def test_no_architecture_parameters_or_gradients():
    m, net = msr_method()
    assert not isinstance(m, GradientMethod) and not hasattr(m, "alpha_opt")
    before_w = m.mixing_weights()
    params_before = [p.detach().clone() for p in net.parameters()]
    out = m.step(batch(8, seed=1), batch(8, seed=2))
    assert set(out) == {"train_loss", "train_correct", "train_count"}
    # the supernet's weights got gradients and moved ...
    assert all(p.grad is not None for p in net.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(params_before, net.parameters()))
    # ... and the only optimised tensors are the supernet's own parameters
    opt_params = {id(p) for group in m.w_opt.param_groups for p in group["params"]}
    assert opt_params == {id(p) for p in net.parameters()}
    # no architecture tensor requires (or received) a gradient
    for w in list(m.mixing_weights().values()) + list(m.train_weights.values()):
        assert not w.requires_grad and w.grad is None
    for value in vars(m).values():
        tensors = value.values() if isinstance(value, dict) else [value]
        for t in tensors:
            if isinstance(t, torch.Tensor):
                assert not t.requires_grad
    assert all(torch.equal(before_w[k], m.mixing_weights()[k]) for k in before_w)
    m.cfg = replace(m.cfg, hessian_every=1)  # Hessian tracking is skipped: there are no alphas
    out = m.end_epoch(0)
    assert out["lr"] == 0.025 and m.lr < 0.025 and "hessian_eig" not in out


def test_default_mixing_is_the_papers_plain_sum():
    """Eq. (3): f_ij(x) = sum over candidates of o(x), every weight 1 (not 1/K)."""
    m, net = msr_method()
    assert m.opts["msr_mixing"] == "sum"
    m.step(batch(), batch())
    for epoch in range(2):
        w = m.mixing_weights()
        assert set(w) == {"normal", "reduce"}
        for cell in w:
            assert torch.equal(w[cell], torch.ones(14, 4))
        m.end_epoch(epoch)
    # the supernet really sums: one edge's output is sum_k op_k(x)
    cell = net.cells[0]
    edge = cell.edges[0]
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        net.eval()
        summed = sum(op(x) for op in edge.ops)
        calls = []
        net.set_edge_forward(lambda call, xx, ww: calls.append((call, ww)) or call.default(xx, ww))
        net(batch(2)[0], m.mixing_weights())
        net.set_edge_forward(None)
        first = calls[0]
        assert torch.equal(first[1], torch.ones(4))
        assert torch.allclose(first[0].default(x, first[1]), summed, atol=1e-6)


def test_fixed_mixing_is_one_over_k():
    m, net = msr_method(msr_mixing="fixed")
    m.step(batch(), batch())
    for epoch in range(2):
        for cell, w in m.mixing_weights().items():
            assert torch.allclose(w, torch.full((14, 4), 0.25))
        m.end_epoch(epoch)


def test_stable_rank_mixing_is_the_public_codes_per_cell_softmax():
    """Per cell instance and edge softmax(-stable rank) of that cell's own candidates, from the
    initial weights in epoch 0 and recomputed before every epoch (public code's MixedOp)."""
    m, net = msr_method(**{"msr_mixing": "stable-rank"})
    assert m.cell_mixing is None
    x = batch()[0]
    # epoch 0: the ranks of the initial weights at the real input sizes, not uniform
    m.step(batch(), batch())
    assert m.cell_mixing is not None and len(m.cell_mixing) == 3
    # (the probe forward ran on a copy; the first step then ran on the real supernet, so the
    # sizes are known now and the weights are unchanged in the 1x1 matrices' directions)
    sizes = [[spectral_norm_of(conv).input_size for *_, conv in entries]
             for _, entries in m.candidates]
    assert sizes[0][0] == (8, 8) and sizes[1][0] == (4, 4) and sizes[2][0] == (2, 2)
    g = torch.Generator().manual_seed(1)
    # moderate, known ranks so the softmax is not one-hot: pixels * t with t close to 1
    r0 = [[1.0 + 0.01 * ((e + 3 * k) % 5) for k in range(4)] for e in range(14)]
    r1 = [[1.0 + 0.2 * ((2 * e + k) % 4) for k in range(4)] for e in range(14)]
    r2 = [[1.0 + 0.2 * ((e + 2 * k) % 4) for k in range(4)] for e in range(14)]
    for i, r in enumerate((r0, r1, r2)):
        set_last_conv_ranks(m, i, r, g)
    out = m.end_epoch(0)
    # independent computation from the raw weights: H*W * ||W||_F^2 / ||W||_2^2, per cell
    for i, (pixels, r) in enumerate(((64, r0), (16, r1), (4, r2))):
        expected = torch.empty(14, 4, dtype=torch.float64)
        for e, k, _, conv in m.candidates[i][1]:
            w = raw_weight(conv).detach().double()[:, :, 0, 0]
            h, wd = spectral_norm_of(conv).input_size
            expected[e, k] = h * wd * w.square().sum() / torch.linalg.matrix_norm(w, ord=2) ** 2
        assert torch.allclose(expected, pixels * torch.tensor(r, dtype=torch.float64), rtol=1e-6)
        got = m.cell_mixing[i]
        assert torch.allclose(got, torch.softmax(-expected.float(), dim=1), atol=1e-6)
        assert torch.allclose(got.sum(1), torch.ones(14))
    # the two reduction cells mix differently (not averaged over the cells of a type)
    assert not torch.allclose(m.cell_mixing[1], m.cell_mixing[2], atol=1e-3)
    # what the runner evaluates with: the per-type mean of the cells' weights
    assert torch.allclose(m.mixing_weights()["reduce"],
                          (m.cell_mixing[1] + m.cell_mixing[2]) / 2)
    assert out["msr_stable_rank_normal"] == pytest.approx(64 * torch.tensor(r0).mean().item(),
                                                           rel=1e-5)
    # a w step really mixes each cell with its own weights: the edge forward hands
    # call.default that cell's row, whatever row of the per-type table it was given
    seen = {}
    orig = m._edge_forward

    def spy(call, xx, ww):
        row = orig(dataclasses.replace(call, default=lambda _x, w: w), xx, ww)
        seen[(call.cell, call.edge)] = row
        return orig(call, xx, ww)

    m._edge_forward = spy
    m.step((x, batch()[1]), batch())
    assert {c for c, _ in seen} == {0, 1, 2}
    for (c, e), row in seen.items():
        assert torch.equal(row, m.cell_mixing[c][e])
    assert all(cell.edge_forward is None for cell in net.cells)  # only during MSR's forwards


def test_without_reduction_cells_the_reduce_genotype_is_still_defined():
    m, net = msr_method(layers=2)  # two normal cells, no reduction cell
    assert [c for c, _ in m.candidates] == ["normal", "normal"]
    m.step(batch(), batch())
    out = m.end_epoch(0)
    assert "msr_stable_rank_normal" in out and "msr_stable_rank_reduce" not in out
    genotype = m.derive()
    assert genotype.reduce == (("sep_conv_3x3", 0), ("sep_conv_3x3", 1)) * 4  # ties: first


def test_bad_options_are_refused():
    with pytest.raises(NasbenchEvalError, match="--msr-mixing"):
        msr_method(msr_mixing="softmax")
    with pytest.raises(NasbenchEvalError, match="--msr-coeff"):
        msr_method(msr_coeff=0)
    with pytest.raises(NasbenchEvalError, match="--msr-power-iters"):
        msr_method(msr_power_iters=0)
    with pytest.raises(NasbenchEvalError, match="no option"):
        msr_method(pgd_steps=1)


# ----------------------------------------------------------------------------- spaces

def test_adapt_space_s3_keeps_only_sep_conv():
    m = create_method("msr")
    with pytest.warns(UserWarning, match="none, skip_connect"):
        sp = m.adapt_space(load_space("s3"))
    assert sp.name == "s3"
    for cell in ("normal", "reduce"):
        assert sp.edge_ops[cell] == (("sep_conv_3x3",),) * 14


def test_adapt_space_darts_keeps_the_four_convs():
    m = create_method("msr")
    with pytest.warns(UserWarning, match="avg_pool_3x3, max_pool_3x3, none, skip_connect"):
        sp = m.adapt_space(load_space("darts"))
    assert sp.name == "darts" and sp.uniform_ops() == CONV_OPS
    assert load_space("darts").num_ops("normal") == 8  # the cached original is untouched


def test_adapt_space_s1_is_refused_naming_the_edges():
    m = create_method("msr")
    with pytest.raises(NasbenchEvalError) as info:
        m.adapt_space(load_space("s1"))
    msg = str(info.value)
    assert "'s1'" in msg
    # normal e5 = state 0 -> node 2 has only max_pool_3x3 and skip_connect
    assert "normal cell edge 5 (state 0 -> node 2: max_pool_3x3, skip_connect)" in msg
    assert "reduce cell edge 0 (state 0 -> node 0: max_pool_3x3, avg_pool_3x3)" in msg


def test_space_without_any_conv_is_refused():
    pools = ("max_pool_3x3", "skip_connect")
    sp = SearchSpace(name="poolonly", family="darts-cell", nodes=4,
                     edge_ops={"normal": (pools,) * 14, "reduce": (pools,) * 14})
    with pytest.raises(NasbenchEvalError, match="'poolonly' has none"):
        create_method("msr").adapt_space(sp)


def test_ragged_restriction_is_padded_with_none_and_none_is_never_used():
    ops = ("sep_conv_3x3", "dil_conv_3x3", "skip_connect")
    first = ("skip_connect", "sep_conv_3x3", "max_pool_3x3")
    sp = SearchSpace(name="ragged", family="darts-cell", nodes=4,
                     edge_ops={"normal": (first,) + (ops,) * 13, "reduce": (ops,) * 14})
    m, net = msr_method(sp)
    assert m.space.edge_ops["normal"][0] == ("sep_conv_3x3", "none")
    assert m.space.edge_ops["normal"][1] == ("sep_conv_3x3", "dil_conv_3x3")
    assert torch.equal(m.mixing_weights()["normal"][0], torch.tensor([1.0, 0.0]))
    m.step(batch(), batch())
    genotype = m.derive()
    assert all(op != "none" for op, _ in genotype.normal + genotype.reduce)
    discrete_weights(m.space, genotype)  # the genotype is expressible in the adapted space


# ----------------------------------------------------------------------------- runs


def test_end_to_end_run_finishes(tmp_path):
    with pytest.warns(UserWarning, match="dropping"):
        run_dir = run(method="msr", space="darts", dataset="digits", epochs=1, layers=3,
                      channels=4, batch_size=16, max_steps_per_epoch=2,
                      bn_recalibration_batches=1, progress=False, out=str(tmp_path))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs_done"] == 1
    assert all(op in CONV_OPS for op, _ in summary["final_genotype"]["normal"])
    row = read_metrics(run_dir)[0]
    assert float(row["msr_stable_rank_normal"]) > 0 and "alpha_val_loss" not in row
    assert json.loads((run_dir / "config.json").read_text())["config"]["train_portion"] == 0.8


def test_method_defaults_apply_when_unset():
    cfg = resolve_config(RunConfig(method="msr"))
    assert cfg.batch_size == 128 and cfg.train_portion == 0.8
    assert resolve_config(RunConfig(method="msr", batch_size=16)).batch_size == 16


@pytest.mark.filterwarnings("ignore:msr.*dropping")
def test_resume_gives_the_same_metrics(tmp_path):
    # batches of 64 and train_portion 0.9: the epoch's eval passes (search-val, the one-shot
    # oracle's test split), each forward recomputing 504 normalised weights, take few batches
    cfg = RunConfig(method="msr", space="darts", dataset="digits", seed=0, epochs=2, layers=3,
                    channels=4, batch_size=64, max_steps_per_epoch=2, train_portion=0.9,
                    bn_recalibration_batches=1, progress=False, out=str(tmp_path / "results"),
                    method_options={"msr_mixing": "stable-rank"})
    reference = run(replace(cfg, out=str(tmp_path / "straight")))

    def interrupt(epoch, row):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, on_epoch_end=interrupt)
    run_dir = tmp_path / "results" / reference.name
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
    assert len(read_metrics(run_dir)) == 1
    run(cfg, resume=True)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    assert read_metrics(run_dir) == read_metrics(reference)
    assert (run_dir / "genotypes.jsonl").read_text() == (reference / "genotypes.jsonl").read_text()


def test_msr_mixing_default_enters_the_run_id():
    """msr's default mixing changed (1/K -> the paper's sum): a run made under the old default
    (no msr_mixing in method_options) must never be resumed under the new one, so the default
    is written into method_options and names a different run; an explicit choice is stable."""
    from dataclasses import replace as _replace

    base = RunConfig(method="msr", space="darts", dataset="digits")
    new = resolve_config(base)
    assert new.method_options == {"msr_mixing": "sum"}
    old_style = _replace(new, method_options={})  # how a 3e5e372 msr run was identified
    assert new.run_id() != old_style.run_id()
    explicit = resolve_config(_replace(base, method_options={"msr_mixing": "fixed"}))
    assert explicit.method_options == {"msr_mixing": "fixed"}
    assert resolve_config(new) == new  # idempotent
