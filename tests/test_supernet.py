from __future__ import annotations

import pytest
import torch

from nasbench_eval.spaces import DartsSupernet, load_space
from nasbench_eval.spaces.darts.supernet import MixedEdge
from nasbench_eval.spaces.darts.ops import FactorizedReduce, Noise, build_op


def uniform_weights(space, requires_grad=False):
    return {c: torch.full(s, 1.0 / s[1], requires_grad=requires_grad)
            for c, s in space.arch_shapes().items()}


@pytest.mark.parametrize("name", ["darts", "s1", "s2", "s3", "s4"])
@pytest.mark.parametrize("in_ch,size", [(3, 16), (1, 8)])
def test_forward_shapes_every_space(name, in_ch, size):
    sp = load_space(name)
    net = DartsSupernet(sp, channels=4, layers=5, num_classes=7, in_channels=in_ch)
    w = uniform_weights(sp, requires_grad=True)
    out = net(torch.randn(2, in_ch, size, size), w)
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(w[c].grad is not None and w[c].grad.abs().sum() > 0 for c in w)


def test_cell_layout_and_channels():
    net = DartsSupernet(load_space("s3"), channels=4, layers=8)
    kinds = [c.cell_type for c in net.cells]
    assert [i for i, k in enumerate(kinds) if k == "reduce"] == [2, 5]
    assert [c.out_channels for c in net.cells] == [16, 16, 32, 32, 32, 64, 64, 64]
    assert isinstance(net.cells[3].pre0, FactorizedReduce)  # cell after a reduction
    assert len(net.cells[0].edges) == 14


def test_none_costs_nothing_and_edge_mixes_linearly():
    edge = MixedEdge(("none", "skip_connect", "sep_conv_3x3"), 4, 1)
    assert len(edge.ops) == 2 and edge.columns == [1, 2]
    x = torch.randn(2, 4, 6, 6)
    edge.eval()
    y_skip = edge(x, torch.tensor([5.0, 1.0, 0.0]))
    assert torch.allclose(y_skip, x)  # 'none' weight has no effect; skip is identity
    a, b = torch.tensor([0.0, 0.3, 0.7]), torch.tensor([0.0, 0.0, 1.0])
    assert torch.allclose(edge(x, a), 0.3 * x + 0.7 * edge(x, b), atol=1e-6)


def test_reduction_edges_stride_two():
    edge = MixedEdge(("max_pool_3x3", "skip_connect", "sep_conv_5x5", "dil_conv_5x5"), 4, 2)
    assert edge(torch.randn(2, 4, 8, 8), torch.ones(4)).shape == (2, 4, 4, 4)


def test_noise_op_ignores_input():
    op = Noise(stride=2)
    x = torch.full((64, 4, 16, 16), 1e6)
    y = op(x)
    assert y.shape == (64, 4, 8, 8)
    assert abs(y.mean().item()) < 0.05 and abs(y.std().item() - 1.0) < 0.05


def test_factorized_reduce_odd_size():
    assert FactorizedReduce(4, 8)(torch.randn(1, 4, 7, 7)).shape == (1, 8, 4, 4)


def test_search_ops_use_non_affine_bn():
    op = build_op("sep_conv_3x3", 4, 1)
    bns = [m for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(bns) == 2 and not any(bn.affine for bn in bns)
