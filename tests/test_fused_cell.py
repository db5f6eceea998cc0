"""The source-fused cell (spaces/fused_cell.py) and its depthwise conv (spaces/dwconv.py)
compute what the per-edge loop computes: outputs, every gradient, BN buffers, in float64."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from nasbench_eval.spaces.darts import dwconv
from nasbench_eval.spaces.darts.dwconv import depthwise_conv2d
from nasbench_eval.spaces.registry import load_space
from nasbench_eval.spectral import spectral_normalize_conv


def _pair(space: str, memory_format=torch.contiguous_format, channels: int = 4, layers: int = 3):
    torch.manual_seed(0)
    sp = load_space(space)
    plain = sp.build_supernet(channels, layers, 5, 3).double().to(memory_format=memory_format)
    fused = copy.deepcopy(plain)
    fused.fused_edges = True
    alphas = {k: (0.3 * torch.randn(*s, dtype=torch.float64)).requires_grad_()
              for k, s in sp.arch_shapes().items()}
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64).contiguous(memory_format=memory_format)
    return plain, fused, alphas, x


def _forward_and_grads(model, alphas, x):
    w = {k: torch.softmax(a, -1) for k, a in alphas.items()}
    out = model(x, w)
    loss = (out ** 2).sum() + out.sum()
    grads = torch.autograd.grad(loss, list(alphas.values()) + list(model.parameters()))
    return out, grads


def _assert_same(plain, fused, alphas, x):
    for train in (True, False, True):
        plain.train(train)
        fused.train(train)
        o1, g1 = _forward_and_grads(plain, alphas, x)
        o2, g2 = _forward_and_grads(fused, alphas, x)
        torch.testing.assert_close(o2, o1, rtol=1e-10, atol=1e-12)
        for a, b in zip(g1, g2):
            torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-11)
    s1, s2 = plain.state_dict(), fused.state_dict()
    assert s1.keys() == s2.keys()
    for k in s1:  # running statistics and num_batches_tracked moved identically
        torch.testing.assert_close(s2[k], s1[k], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("space", ["darts", "s1", "s2", "s3", "sharpdarts"])
def test_fused_cell_equals_the_per_edge_loop(space):
    _assert_same(*_pair(space))


def test_fused_cell_equals_the_per_edge_loop_channels_last():
    plain, fused, alphas, x = _pair("darts", torch.channels_last)
    _assert_same(plain, fused, alphas, x)


def test_fused_cell_really_fuses():
    _, fused, alphas, x = _pair("darts")
    fused(x, {k: torch.softmax(a, -1) for k, a in alphas.items()})
    plan = fused.cells[0]._fused
    kinds = {g.kind for src in plan.sources for g in src.groups}
    assert kinds == {"identity", "pool", "conv"}
    # each input of a normal cell feeds 4 edges: one group per candidate covers them, and
    # the convolution candidates of both inputs run as one group of 8 edges
    first = plan.sources[0]
    assert first.states == (0, 1)
    assert sorted(len(g.edges) for g in first.groups if g.kind == "conv") == [8, 8, 8, 8]
    assert all(len(g.edges) == 4 for g in first.groups if g.kind != "conv")
    assert [src.states for src in plan.sources[1:]] == [(2,), (3,), (4,)]
    # reduction cells: the stride-2 skip (FactorizedReduce) of 4 edges fuses too
    red = fused.cells[1]._fused
    assert any(g.kind == "reduce" and len(g.edges) == 4 for g in red.sources[0].groups)


def test_hooked_or_parametrized_candidates_run_through_their_modules():
    plain, fused, alphas, x = _pair("s3")
    for model in (plain, fused):  # MSR-style spectral normalisation on one candidate
        conv = model.cells[0].edges[0].ops[-1].op[0][1]
        spectral_normalize_conv(conv, coeff=1.0, n_power_iterations=1)
    w = {k: torch.softmax(a, -1).detach() for k, a in alphas.items()}
    torch.testing.assert_close(fused(x, w), plain(x, w))
    plan = fused.cells[0]._fused
    assert any(g.kind == "module" and g.edges == (0,) for g in plan.sources[0].groups)


def test_hooks_registered_after_the_first_forward_are_honoured():
    plain, fused, alphas, x = _pair("darts")
    w = {k: torch.softmax(a, -1).detach() for k, a in alphas.items()}
    fused(x, w)  # the plan exists
    calls = {"plain": 0, "fused": 0}
    for name, model in (("plain", plain), ("fused", fused)):
        conv = model.cells[0].edges[0].ops[-1].op[1]  # dil_conv_5x5's depthwise conv
        conv.register_forward_pre_hook(lambda mod, args: (2 * args[0],))

        def count(mod, gin, gout, name=name):
            calls[name] += 1
        model.cells[0].edges[1].ops[-2].op[1].register_full_backward_hook(count)
    out_p, out_f = plain(x, w), fused(x, w)
    torch.testing.assert_close(out_f, out_p)
    out_p.sum().backward()
    out_f.sum().backward()
    assert calls == {"plain": 1, "fused": 1}


def test_hook_on_a_mixed_edge_makes_the_cell_use_the_per_edge_loop():
    plain, fused, alphas, x = _pair("s2")
    w = {k: torch.softmax(a, -1).detach() for k, a in alphas.items()}
    seen = []
    fused.cells[0].edges[3].register_forward_hook(lambda *a: seen.append(1))
    torch.testing.assert_close(fused(x, w), plain(x, w))
    assert seen == [1]


def test_bn_settings_that_differ_within_a_group_apply_per_module():
    plain, fused, alphas, x = _pair("darts")
    for model in (plain, fused):
        bns = [m for m in model.cells[0].edges[2].modules() if isinstance(m, torch.nn.BatchNorm2d)]
        bns[0].momentum, bns[1].eps, bns[-1].eps = 0.5, 0.1, 0.2  # a pool's BN and two convs'
    _assert_same(plain, fused, alphas, x)


def test_cumulative_bn_momentum_is_honoured():
    """BN recalibration sets momentum None (cumulative averages, counted per module)."""
    plain, fused, alphas, x = _pair("darts")
    w = {k: torch.softmax(a, -1).detach() for k, a in alphas.items()}
    fused(x, w)  # the plan exists before momentum changes, as in a run
    plain(x, w)
    for model in (plain, fused):
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None
        model(x, w)
        model(2 * x, w)
    plain.eval(), fused.eval()  # momentum stays None after recalibration
    torch.testing.assert_close(fused(x, w), plain(x, w))
    s1, s2 = plain.state_dict(), fused.state_dict()
    for k in s1:
        torch.testing.assert_close(s2[k], s1[k], rtol=1e-10, atol=1e-12)


def test_model_moved_after_the_plan_was_built():
    plain, fused, alphas, x = _pair("s2")
    w = {k: torch.softmax(a, -1).detach() for k, a in alphas.items()}
    fused(x, w)
    plain, fused = plain.float(), fused.float()
    w = {k: v.float() for k, v in w.items()}
    torch.testing.assert_close(fused(x.float(), w), plain(x.float(), w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("space", ["s3", "darts"])
def test_hessian_vector_product_through_the_fused_cell(space):
    """darts: pools, FactorizedReduce, dilated and stride-2 depthwise convs in the graph."""
    plain, fused, alphas, x = _pair(space)
    v = [torch.randn_like(a) for a in alphas.values()]

    def hvp(model):
        a = [t.detach().clone().requires_grad_() for t in alphas.values()]
        w = {k: torch.softmax(t, -1) for k, t in zip(alphas, a)}
        out = model(x, w)
        g = torch.autograd.grad((out ** 2).sum(), a, create_graph=True)
        return torch.autograd.grad(sum((gi * vi).sum() for gi, vi in zip(g, v)), a)

    for a, b in zip(hvp(plain), hvp(fused)):
        torch.testing.assert_close(b, a, rtol=1e-8, atol=1e-10)


def test_s4_noise_candidates_run_fused():
    """S4's noise op draws fresh values (per edge, in another order than the loop's), so
    only shapes and finiteness can be compared."""
    plain, fused, alphas, x = _pair("s4")
    w = {k: torch.softmax(a, -1).detach() for k, a in alphas.items()}
    a, b = plain(x, w), fused(x, w)
    assert a.shape == b.shape and torch.isfinite(b).all()


# ----------------------------------------------------------------------------- dwconv

@pytest.mark.parametrize("k,stride,dilation", [(3, 1, 1), (5, 1, 1), (3, 1, 2), (5, 1, 2),
                                               (3, 2, 1), (5, 2, 1)])
def test_depthwise_conv_gradients(k, stride, dilation):
    torch.manual_seed(1)
    pad = dilation * (k - 1) // 2
    x = torch.randn(2, 3, 7, 7, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 1, k, k, dtype=torch.float64, requires_grad=True)

    def f(x, w):
        return depthwise_conv2d(x, w, (stride, stride), (pad, pad), (dilation, dilation))

    ref = F.conv2d(x, w, None, stride, pad, dilation, 3)
    torch.testing.assert_close(f(x, w), ref)
    assert torch.autograd.gradcheck(f, (x, w))
    assert torch.autograd.gradgradcheck(f, (x, w))


def test_depthwise_weight_gradient_only_when_the_pass_needs_it(monkeypatch):
    """The alpha step's backward (autograd.grad w.r.t. alpha) computes no weight gradient."""
    calls = []
    real = dwconv.weight_grad
    monkeypatch.setattr(dwconv, "weight_grad", lambda *a: calls.append(1) or real(*a))
    x = torch.randn(2, 4, 6, 6)
    w = torch.randn(4, 1, 5, 5, requires_grad=True)
    scale = torch.ones(1, requires_grad=True)
    y = depthwise_conv2d(x * scale, w, (1, 1), (2, 2), (1, 1))
    torch.autograd.grad(y.square().sum(), [scale])
    assert calls == []
    y = depthwise_conv2d(x * scale, w, (1, 1), (2, 2), (1, 1))
    y.square().sum().backward()
    assert calls == [1] and w.grad is not None
