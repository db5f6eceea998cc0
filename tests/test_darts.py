from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from nasbench_eval.config import RunConfig
from nasbench_eval.methods import create_method
from nasbench_eval.methods.darts import unrolled_alpha_grads
from nasbench_eval.spaces import DartsSupernet, load_space


# The DARTS paper's toy bilevel problem: w*(a) = a, so L_val(w*(a), a) = (a - 1)^2: optimum (1, 1).
def toy_train(w, a):
    return w[0] ** 2 - 2 * a[0] * w[0] + a[0] ** 2


def toy_val(w, a):
    return a[0] * w[0] - 2 * a[0] + 1


def test_toy_gradient_matches_closed_form():
    w, a, xi = torch.tensor(0.3), torch.tensor(-0.7), 0.1
    grads, _ = unrolled_alpha_grads(toy_train, toy_val, [w], [a], xi=xi, momentum=0.0,
                                    momentum_bufs=[None], weight_decay=0.0)
    w_virtual = w - xi * (2 * w - 2 * a)
    expected = w_virtual - 2 + 2 * xi * a  # d/da [a w'(a) - 2a + 1], w'(a) = w - xi (2w - 2a)
    assert torch.allclose(grads[0], expected, atol=1e-5)


def _toy_search(second_order: bool, xi: float, lr: float = 0.05, steps: int = 3000):
    w, a = torch.tensor(0.0), torch.tensor(0.0)
    for _ in range(steps):
        if second_order:
            (ga,), _ = unrolled_alpha_grads(toy_train, toy_val, [w], [a], xi=xi, momentum=0.0,
                                            momentum_bufs=[None], weight_decay=0.0)
        else:
            ga = w - 2  # dL_val/da at the current w
        a = a - lr * ga
        w = w - lr * (2 * w - 2 * a)
    return w.item(), a.item()


def test_toy_second_order_finds_optimum_first_order_does_not():
    # xi = 0.5 makes the virtual step land on w*(a) = a exactly: the true hypergradient
    w2, a2 = _toy_search(True, xi=0.5)
    assert abs(w2 - 1) < 1e-3 and abs(a2 - 1) < 1e-3
    # a smaller xi is a one-step approximation: fixed point a = 2 / (1 + 2 xi)
    w3, a3 = _toy_search(True, xi=0.05)
    assert abs(a3 - 2 / 1.1) < 1e-3 and abs(w3 - a3) < 1e-3
    w1, a1 = _toy_search(False, xi=0.0)
    assert abs(w1 - 2) < 1e-2 and abs(a1 - 2) < 1e-2  # first order settles at (2, 2)


def test_nonquadratic_matches_exact_hypergradient():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, dtype=torch.float64)

    def loss(w, a):
        h = torch.tanh(x @ (w[0] * torch.sigmoid(a[0])))
        return ((h.sum(1) - y) ** 2).mean() + (a[0] ** 2).sum() * (w[0] ** 2).mean()

    w0 = torch.randn(3, 4, dtype=torch.float64)
    a0 = torch.randn(3, 4, dtype=torch.float64)
    buf = torch.randn(3, 4, dtype=torch.float64)
    xi, mom, wd = 0.05, 0.9, 3e-4
    grads, _ = unrolled_alpha_grads(loss, loss, [w0], [a0], xi=xi, momentum=mom,
                                    momentum_bufs=[buf], weight_decay=wd, r=1e-4)
    # exact: differentiate through the virtual step with double backprop
    a = a0.clone().requires_grad_()
    w = w0.clone().requires_grad_()
    gw = torch.autograd.grad(loss([w], [a]), w, create_graph=True)[0]
    w_virtual = w0 - xi * (mom * buf + gw + wd * w0)
    exact = torch.autograd.grad(loss([w_virtual], [a]), a)[0]
    assert torch.allclose(grads[0], exact, rtol=1e-4, atol=1e-7)


def _tiny(method: str, dtype=torch.float32, **options):
    cfg = RunConfig(method=method, space="s2", layers=3, channels=4, epochs=4, method_options=options)
    torch.manual_seed(0)
    net = DartsSupernet(load_space("s2"), channels=4, layers=3, num_classes=3, in_channels=1).to(dtype)
    m = create_method(method)
    m.setup(net, load_space("s2"), cfg, steps_per_epoch=4)
    batch = lambda: (torch.randn(8, 1, 8, 8, dtype=dtype), torch.randint(0, 3, (8,)))  # noqa: E731
    return m, net, batch


def test_darts2nd_method_gradient_on_supernet_matches_exact():
    # a tiny finite-difference radius: with ReLUs, the reference's 0.01 crosses kinks and the
    # HVP is only approximate; the formula and its wiring must be exact in the limit
    m, net, batch = _tiny("darts-2nd", torch.float64, hvp_r=1e-6)
    m.alphas = {k: torch.randn_like(v).double().requires_grad_() for k, v in m.alphas.items()}
    m.alpha_opt = torch.optim.Adam(list(m.alphas.values()), lr=3e-4)
    tb, vb = batch(), batch()
    m.step(tb, vb)  # fills the momentum buffers, like a search in progress
    grads, _ = m.alpha_grads(tb, vb)

    names = [n for n, _ in net.named_parameters()]
    buffers = dict(net.named_buffers())
    keys = list(m.alphas)

    def loss(batch, w, a):
        weights = {k: F.softmax(v, -1) for k, v in zip(keys, a)}
        out = functional_call(net, {**dict(zip(names, w)), **{k: b.clone() for k, b in buffers.items()}},
                              (batch[0], weights))
        return F.cross_entropy(out, batch[1])

    a = [v.detach().clone().requires_grad_() for v in m.alphas.values()]
    w = [p.detach().clone().requires_grad_() for p in net.parameters()]
    gw = torch.autograd.grad(loss(tb, w, a), w, create_graph=True)
    xi = m.lr
    bufs = [m.w_opt.state[p]["momentum_buffer"] for p in net.parameters()]
    w_virtual = [p.detach() - xi * (0.9 * b + g + 3e-4 * p.detach()) for p, g, b in zip(w, gw, bufs)]
    exact = torch.autograd.grad(loss(vb, w_virtual, a), a)
    for g, e in zip(grads, exact):
        assert torch.allclose(g, e, rtol=1e-6, atol=1e-9), (g - e).abs().max()


def test_first_order_step_moves_both_alpha_and_weights():
    m, net, batch = _tiny("darts")
    a_before = {k: v.detach().clone() for k, v in m.alphas.items()}
    w_before = [p.detach().clone() for p in net.parameters()]
    out = m.step(batch(), batch())
    assert {"train_loss", "train_correct", "train_count", "alpha_val_loss"} <= set(out)
    assert all(not torch.equal(a_before[k], m.alphas[k]) for k in m.alphas)
    assert any(not torch.equal(a, b) for a, b in zip(w_before, net.parameters()))
    assert m.end_epoch(0)["lr"] == 0.025 and m.lr < 0.025  # cosine schedule advanced
