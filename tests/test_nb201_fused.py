"""The source-fused NAS-Bench-201 cell (spaces/nb201/fused_cell.py) computes what the per-edge
loop computes: outputs, every gradient, BN buffers, Hessian-vector products, in float64; and
it really fuses (fewer convolution calls)."""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from nasbench_eval.spaces.nb201.supernet import Nb201Supernet
from nasbench_eval.spaces.registry import load_space
from nasbench_eval.spaces.supernet import EdgeCall

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


def _pair(memory_format=torch.contiguous_format, nodes: int = 4, ops=OPS, one_hot=False):
    torch.manual_seed(0)
    plain = Nb201Supernet(nodes, ops, channels=4, layers=3, num_classes=5, in_channels=3)
    plain = plain.double().to(memory_format=memory_format)
    fused = copy.deepcopy(plain)
    fused.set_fused_edges(True)
    shape = plain.arch_shapes()["cell"]
    if one_hot:  # a discrete cell's weights (random-ws, GDAS's forward values, the oracle)
        a = torch.zeros(shape, dtype=torch.float64)
        a[torch.arange(shape[0]), torch.randint(shape[1], (shape[0],))] = 1.0
        a.requires_grad_()
    else:
        a = (0.3 * torch.randn(*shape, dtype=torch.float64)).requires_grad_()
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64).contiguous(memory_format=memory_format)
    return plain, fused, a, x, one_hot


def _weights(a, one_hot):
    return {"cell": a if one_hot else torch.softmax(a, -1)}


def _forward_and_grads(model, a, x, one_hot):
    out = model(x, _weights(a, one_hot))
    loss = (out ** 2).sum() + out.sum()
    return out, torch.autograd.grad(loss, [a] + list(model.parameters()), allow_unused=True,
                                    materialize_grads=True)  # `none` only: alpha unused


def _assert_same(plain, fused, a, x, one_hot):
    for train in (True, False, True):
        plain.train(train)
        fused.train(train)
        o1, g1 = _forward_and_grads(plain, a, x, one_hot)
        o2, g2 = _forward_and_grads(fused, a, x, one_hot)
        torch.testing.assert_close(o2, o1, rtol=1e-10, atol=1e-12)
        for p, q in zip(g1, g2):
            torch.testing.assert_close(q, p, rtol=1e-9, atol=1e-11)
    s1, s2 = plain.state_dict(), fused.state_dict()
    assert s1.keys() == s2.keys()
    for k in s1:  # running statistics and num_batches_tracked moved identically
        torch.testing.assert_close(s2[k], s1[k], rtol=1e-10, atol=1e-12)
    assert all(c._fused is not None for c in fused.cells())  # it did run fused


@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("fmt", [torch.contiguous_format, torch.channels_last])
def test_fused_cell_equals_the_per_edge_loop(one_hot, fmt):
    _assert_same(*_pair(fmt, one_hot=one_hot))


@pytest.mark.parametrize("nodes,ops", [(3, OPS), (5, OPS),
                                       (4, ("none", "nor_conv_3x3", "avg_pool_3x3")),
                                       (4, ("skip_connect", "nor_conv_1x1")),
                                       (4, ("none",))])
def test_other_node_counts_and_op_subsets(nodes, ops):
    _assert_same(*_pair(nodes=nodes, ops=ops))


def test_the_registered_space_runs_fused():
    torch.manual_seed(0)
    net = load_space("nb201").build_supernet(4, 3, 5, 3)
    net.set_fused_edges(True)
    net(torch.randn(2, 3, 8, 8), {"cell": torch.softmax(torch.randn(6, 5), -1)})
    assert all(c._fused is not None for c in net.cells())


def _count_convs(model, a, x, one_hot, monkeypatch):
    calls = []
    orig = torch.nn.functional.conv2d

    def counting(*args, **kw):
        calls.append(1)
        return orig(*args, **kw)

    with monkeypatch.context() as mp:
        mp.setattr(torch.nn.functional, "conv2d", counting)
        model(x, _weights(a, one_hot))
    return len(calls)


def test_fused_cell_really_fuses(monkeypatch):
    plain, fused, a, x, one_hot = _pair()
    n_plain = _count_convs(plain, a, x, one_hot, monkeypatch)
    n_fused = _count_convs(fused, a, x, one_hot, monkeypatch)
    # per cell: 12 convs per-edge (6 edges x 1x1, 3x3) vs 3 (one per source node)
    cells = len(fused.cells())
    assert n_plain - n_fused == cells * (12 - 3)
    plan = fused.cells()[0]._fused
    assert [s.edges for s in plan.sources] == [(0, 1, 3), (2, 4), (5,)]
    assert [len(s.conv) for s in plan.sources] == [6, 4, 2]
    assert [s.conv_grid for s in plan.sources] == [2, 2, 2]
    assert all(len(s.skip) == len(s.pool) == len(s.edges) and not s.modules
               for s in plan.sources)


def test_edge_forward_makes_the_cell_use_the_per_edge_loop():
    plain, fused, a, x, one_hot = _pair()
    w = {"cell": torch.softmax(a, -1).detach()}
    seen: list[int] = []

    def fn(call: EdgeCall, h, wr):
        seen.append(call.edge)
        return call.default(h, wr)

    fused.set_edge_forward(fn)
    torch.testing.assert_close(fused(x, w), plain(x, w))
    assert len(seen) == 6 * len(fused.cells())
    assert all(c._fused is None for c in fused.cells())


def test_drop_path_uses_the_per_edge_loop():
    plain, fused, a, x, one_hot = _pair()
    w = {"cell": torch.softmax(a, -1).detach()}
    for model in (plain, fused):
        model.set_drop_path(0.3, "edge")
    torch.manual_seed(5)
    o1 = plain(x, w)
    torch.manual_seed(5)
    o2 = fused(x, w)
    torch.testing.assert_close(o2, o1)
    assert all(c._fused is None for c in fused.cells())


def test_hooked_candidates_run_through_their_modules():
    plain, fused, a, x, one_hot = _pair()
    w = {"cell": torch.softmax(a, -1).detach()}
    fused(x, w)  # the plan exists before the hook: it must be rebuilt
    calls = {"plain": 0, "fused": 0}
    for name, model in (("plain", plain), ("fused", fused)):
        conv = model.cells()[0].edges[1].ops[2].op[1]  # nor_conv_3x3 of edge 0 -> 2
        conv.register_forward_pre_hook(lambda mod, args: (2 * args[0],))

        def count(mod, gin, gout, name=name):
            calls[name] += 1
        model.cells()[1].edges[4].ops[0].register_full_backward_hook(count)  # a skip
    out_p, out_f = plain(x, w), fused(x, w)
    torch.testing.assert_close(out_f, out_p)
    out_p.sum().backward()
    out_f.sum().backward()
    assert calls == {"plain": 1, "fused": 1}
    plan = fused.cells()[0]._fused
    assert (1, 3) in [(e, c) for e, c, _ in plan.sources[0].modules]


def test_hook_on_a_mixed_edge_makes_the_cell_use_the_per_edge_loop():
    plain, fused, a, x, one_hot = _pair()
    w = {"cell": torch.softmax(a, -1).detach()}
    seen = []
    fused.cells()[0].edges[3].register_forward_hook(lambda *args: seen.append(1))
    torch.testing.assert_close(fused(x, w), plain(x, w))
    assert seen == [1]


def test_cumulative_bn_momentum_is_honoured():
    """BN recalibration sets momentum None (cumulative averages, counted per module)."""
    plain, fused, a, x, one_hot = _pair()
    w = {"cell": torch.softmax(a, -1).detach()}
    fused(x, w)
    plain(x, w)
    for model in (plain, fused):
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        model(x, w)
        model(2 * x, w)
    plain.eval(), fused.eval()
    torch.testing.assert_close(fused(x, w), plain(x, w))
    s1, s2 = plain.state_dict(), fused.state_dict()
    for k in s1:
        torch.testing.assert_close(s2[k], s1[k], rtol=1e-10, atol=1e-12)


def test_hessian_vector_product_through_the_fused_cell():
    plain, fused, a, x, _ = _pair()
    v = torch.randn_like(a)

    def hvp(model):
        t = a.detach().clone().requires_grad_()
        out = model(x, {"cell": torch.softmax(t, -1)})
        (g,) = torch.autograd.grad((out ** 2).sum(), [t], create_graph=True)
        return torch.autograd.grad((g * v).sum(), [t])[0]

    torch.testing.assert_close(hvp(fused), hvp(plain), rtol=1e-8, atol=1e-10)


def test_model_moved_after_the_plan_was_built():
    plain, fused, a, x, _ = _pair()
    w = {"cell": torch.softmax(a, -1).detach()}
    fused(x, w)
    plain, fused = plain.float(), fused.float()
    w = {"cell": w["cell"].float()}
    torch.testing.assert_close(fused(x.float(), w), plain(x.float(), w), rtol=1e-5, atol=1e-6)


def test_auto_leaves_nb201_unfused_and_on_fuses():
    """``--fused-edges auto`` is the family's measured default (off for nb201, docs/nb201.md)
    and the run's record says what ran; ``on`` fuses."""
    from nasbench_eval.config import RunConfig
    from nasbench_eval.execution import resolve_execution
    from nasbench_eval.runner import build_search
    from nasbench_eval.spaces.registry import get_family

    cpu = torch.device("cpu")
    assert get_family("nb201-cell").fused_edges_default is False
    assert get_family("darts-cell").fused_edges_default is True
    ex = lambda mode, default: resolve_execution("auto", "auto", "device", False, cpu,  # noqa: E731
                                                 fused_edges=mode, fused_default=default)
    assert [ex(m, False).fused_edges for m in ("auto", "on", "off")] == [False, True, False]
    assert [ex(m, True).fused_edges for m in ("auto", "on", "off")] == [True, True, False]
    for mode, expected in (("auto", False), ("on", True)):
        cfg = RunConfig(method="darts", space="nb201", dataset="synthetic", epochs=1, layers=3,
                        channels=4, batch_size=8, device="cpu", oracle="oneshot",
                        fused_edges=mode, dataset_options={"n_train": 32, "n_test": 16,
                                                           "shape": [3, 8, 8]})
        search = build_search(cfg)
        assert search.execution.fused_edges is expected
        assert search.supernet.fused_edges is expected
