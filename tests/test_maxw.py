"""Max-W weighting and the sharpDARTS space (Hundt, Jain & Hager 2019)."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import nasbench_eval
from nasbench_eval.config import RunConfig
from nasbench_eval.methods import create_method, load_all, method_class
from nasbench_eval.methods.base import method_description
from nasbench_eval.methods.maxw import MaxWMixing
from nasbench_eval.spaces import DartsSupernet, load_space
from nasbench_eval.spaces.darts.genotype import derive_genotype
from nasbench_eval.spaces.darts.ops import OPS, SharpSepConv, build_op

# sharpDARTS Table 1, row by row
TABLE_1 = ("none", "avg_pool_3x3", "max_pool_3x3", "skip_connect", "sharp_sep_conv_3x3",
           "sharp_dil_conv_3x3", "flood_conv_3x3", "dil_flood_conv_3x3", "choke_conv_3x3",
           "dil_choke_conv_3x3")

# new op -> (dilation, c_mid as a function of C): Table 1's D, CMid / CMidMult columns
SHARP_OPS = {
    "sharp_sep_conv_3x3": (1, lambda c: c),
    "sharp_dil_conv_3x3": (2, lambda c: c),
    "flood_conv_3x3": (1, lambda c: 4 * c),
    "dil_flood_conv_3x3": (2, lambda c: 4 * c),
    "choke_conv_3x3": (1, lambda c: 32),
    "dil_choke_conv_3x3": (2, lambda c: 32),
}


# ---------------------------------------------------------------- Max-W mixing
def test_maxw_weights_leader_is_exactly_one_others_one_minus_gap():
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.25, 0.25, 0.5]])
    alphas = {"normal": probs.log() + 0.7, "reduce": (probs.log() - 2.0).flip(0)}
    out = MaxWMixing()(alphas)
    for cell, a in alphas.items():
        w = F.softmax(a, -1)
        lead = w.argmax(-1)
        got = out[cell]
        assert got.shape == a.shape
        for e in range(a.shape[0]):
            assert got[e, lead[e]].item() == 1.0  # exactly, not approximately
            for i in range(a.shape[1]):
                if i != lead[e]:
                    expected = 1.0 - (w[e].max() - w[e, i])
                    assert got[e, i].item() == pytest.approx(expected.item(), abs=1e-6)
                    assert got[e, i].item() < 1.0
    # the hand-computed numbers for the normal cell
    assert torch.allclose(out["normal"], torch.tensor([[1.0, 0.8, 0.7], [0.5, 1.0, 0.7],
                                                       [0.75, 0.75, 1.0]]), atol=1e-6)


def test_maxw_is_not_softmax_and_is_shift_invariant():
    a = torch.tensor([[2.0, 0.0, -1.0, 0.5]])
    out = MaxWMixing()({"normal": a})["normal"]
    assert not torch.allclose(out, F.softmax(a, -1))
    assert torch.allclose(MaxWMixing()({"normal": a + 3.0})["normal"], out, atol=1e-6)


def test_gradients_reach_alpha_through_maxw_and_are_exact():
    torch.manual_seed(0)
    a = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)  # distinct entries: no ties
    assert torch.autograd.gradcheck(lambda x: MaxWMixing()({"normal": x})["normal"], (a,))
    c = torch.randn(5, 4, dtype=torch.float64)
    (MaxWMixing()({"normal": a})["normal"] * c).sum().backward()
    assert a.grad is not None and a.grad.abs().sum() > 0
    # by hand: d/da of sum_i c_i (w_i - w_m) = J_softmax^T (c - (sum c) e_m)
    w = F.softmax(a.detach(), -1)
    m = w.argmax(-1)
    g = c.clone()
    g[torch.arange(5), m] -= c.sum(-1)
    expected = w * (g - (w * g).sum(-1, keepdim=True))
    assert torch.allclose(a.grad, expected, atol=1e-12)


def test_method_registered_and_described():
    load_all()
    cls = method_class("maxw")
    assert cls.paper.startswith("Hundt, Jain & Hager, sharpDARTS")
    assert "Max-W" in method_description(cls)
    m = create_method("maxw")
    assert isinstance(m.mixing, MaxWMixing)


# ---------------------------------------------------------------- derivation
def test_derive_uses_softmax_ranking_not_maxw_ties():
    space = load_space("darts")  # none, max, avg, skip, sep3, sep5, dil3, dil5
    a = torch.zeros(14, 8)
    # node 1 (edges 2, 3, 4 from states 0, 1, 2): leaders of different strength
    a[2, 6] = 1.0   # dil_conv_3x3 from 0, weak
    a[3, 4] = 3.0   # sep_conv_3x3 from 1, stronger
    a[4, 5] = 5.0   # sep_conv_5x5 from 2, strongest
    m = create_method("maxw")
    m.space = space
    m.alphas = {"normal": a.clone().requires_grad_(), "reduce": a.flip(1).clone().requires_grad_()}
    g = m.derive()
    softmax = {k: F.softmax(v.detach(), -1) for k, v in m.alphas.items()}
    assert g == derive_genotype(space, softmax)
    assert g.normal[2:4] == (("sep_conv_5x5", 2), ("sep_conv_3x3", 1))
    # Max-W ties every non-none leader at 1: ranking by it keeps the lowest-indexed edges
    maxw = derive_genotype(space, m.mixing_weights())
    assert maxw.normal[2:4] == (("dil_conv_3x3", 0), ("sep_conv_3x3", 1))
    assert maxw != g
    # ... while the op chosen on each edge is the same under both (monotone per edge)
    mw = m.mixing_weights()
    for cell in ("normal", "reduce"):
        assert torch.equal(mw[cell][:, 1:].argmax(-1), softmax[cell][:, 1:].argmax(-1))


# ---------------------------------------------------------------- SharpSepConv ops
@pytest.mark.parametrize("name", sorted(SHARP_OPS))
@pytest.mark.parametrize("c", [4, 16])
@pytest.mark.parametrize("stride", [1, 2])
def test_sharp_op_shape_and_structure(name, c, stride):
    dilation, c_mid = SHARP_OPS[name]
    op = build_op(name, c, stride)
    assert OPS[name].parametric
    assert isinstance(op, SharpSepConv) and op.c_mid == c_mid(c)
    out = op(torch.randn(2, c, 8, 8))
    assert out.shape == (2, c, 8 // stride, 8 // stride)
    # Fig. 3, layer by layer
    kinds = [type(x) for x in op.op]
    assert kinds == [nn.ReLU, nn.Conv2d, nn.Conv2d, nn.BatchNorm2d,
                     nn.ReLU, nn.Conv2d, nn.Conv2d, nn.BatchNorm2d]
    dw1, pw1, dw2, pw2 = [x for x in op.op if isinstance(x, nn.Conv2d)]
    assert dw1.kernel_size == (3, 3) and dw1.groups == c and dw1.in_channels == c
    assert dw1.stride == (stride, stride) and dw1.dilation == (dilation, dilation)
    assert pw1.kernel_size == (1, 1) and (pw1.in_channels, pw1.out_channels) == (c, c_mid(c))
    # the second depthwise conv runs on C_mid channels, unstrided, undilated
    assert dw2.groups == dw2.in_channels == dw2.out_channels == c_mid(c)
    assert dw2.stride == (1, 1) and dw2.dilation == (1, 1) and dw2.kernel_size == (3, 3)
    assert pw2.kernel_size == (1, 1) and (pw2.in_channels, pw2.out_channels) == (c_mid(c), c)
    bns = [x for x in op.op if isinstance(x, nn.BatchNorm2d)]
    assert [bn.num_features for bn in bns] == [c_mid(c), c]
    assert not any(bn.affine for bn in bns)  # search build
    assert all(bn.affine for bn in build_op(name, c, stride, affine=True).modules()
               if isinstance(bn, nn.BatchNorm2d))


def test_sharp_sep_conv_general_sizes():
    op = SharpSepConv(3, 6, 5, 2, dilation=2, c_mid_mult=0.5)
    assert op.c_mid == 3 and op(torch.randn(1, 3, 9, 9)).shape == (1, 6, 5, 5)


# ---------------------------------------------------------------- the space
def test_sharpdarts_space_loads_with_table_1_ops():
    sp = load_space("sharpdarts")
    assert sp.family == "darts-cell" and sp.nodes == 4 and sp.num_edges == 14
    assert sp.uniform_ops() == TABLE_1
    assert sp.description and "Table 1" in sp.source
    assert sp.arch_shapes() == {"normal": (14, 10), "reduce": (14, 10)}
    assert sp.count_cells("normal") == 180 * 9 ** 8  # 9 non-none ops on each kept edge
    assert sp.count_architectures() == (180 * 9 ** 8) ** 2
    assert math.isclose(sp.count_cells("normal"), 7.75e9, rel_tol=0.01)


def test_supernet_forward_backward_on_sharpdarts():
    torch.manual_seed(0)
    sp = load_space("sharpdarts")
    net = DartsSupernet(sp, channels=4, layers=3, num_classes=3, in_channels=1)
    alphas = {c: (1e-3 * torch.randn(*s)).requires_grad_() for c, s in sp.arch_shapes().items()}
    out = net(torch.randn(4, 1, 8, 8), MaxWMixing()(alphas))
    assert out.shape == (4, 3)
    F.cross_entropy(out, torch.tensor([0, 1, 2, 0])).backward()
    for c in alphas:
        assert alphas[c].grad is not None and torch.isfinite(alphas[c].grad).all()
        assert alphas[c].grad.abs().sum() > 0
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_method_step_moves_alpha_on_sharpdarts():
    sp = load_space("sharpdarts")
    cfg = RunConfig(method="maxw", space="sharpdarts", layers=3, channels=4, epochs=2)
    torch.manual_seed(0)
    net = DartsSupernet(sp, channels=4, layers=3, num_classes=3, in_channels=1)
    m = create_method("maxw")
    m.setup(net, sp, cfg, steps_per_epoch=2)
    before = {k: v.detach().clone() for k, v in m.alphas.items()}
    batch = lambda: (torch.randn(8, 1, 8, 8), torch.randint(0, 3, (8,)))  # noqa: E731
    out = m.step(batch(), batch())
    assert torch.isfinite(out["train_loss"]) and torch.isfinite(out["alpha_val_loss"])
    assert all(not torch.equal(before[k], m.alphas[k]) for k in m.alphas)
    w = m.mixing_weights()
    assert all((w[k].max(-1).values == 1.0).all() for k in w)


def test_end_to_end_run_finishes(tmp_path):
    # train_portion 0.9: the epoch's search-val pass (eval forwards of the 10-op supernet)
    # covers about 140 images instead of about 720
    run_dir = nasbench_eval.run(method="maxw", space="sharpdarts", dataset="digits", epochs=1,
                                layers=3, channels=4, batch_size=16, max_steps_per_epoch=2,
                                train_portion=0.9, bn_recalibration_batches=1, progress=False,
                                out=str(tmp_path))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished"
    ops = {op for cell in ("normal", "reduce") for op, _ in summary["final_genotype"][cell]}
    assert ops <= set(TABLE_1) - {"none"}
