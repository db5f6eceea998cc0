"""DrNAS: Dirichlet samples with the learned concentrations, the KL regulariser's gradient."""
from __future__ import annotations

import pytest
import torch

from nasbench_eval.config import RunConfig
from nasbench_eval.methods import create_method
from nasbench_eval.methods.samplers import (DirichletSampler, concentration,
                                            dirichlet_kl_to_anchor)
from nasbench_eval.spaces import load_space


SPACES = ["s3", "nb1shot1-1", "nb201"]
"""DrNAS's paper searched DARTS-space cells (and NAS-Bench-201); on NAS-Bench-1Shot1 every
row (ops, parents, output) is a Dirichlet sample, as every softmax row is in DARTS."""


def _tiny(space: str = "s3", **options):
    cfg = RunConfig(method="drnas", space=space, layers=3, channels=4, epochs=4,
                    method_options=options)
    torch.manual_seed(0)
    net = load_space(space).build_supernet(4, 3, 3, 1)
    m = create_method("drnas")
    m.setup(net, load_space(space), cfg, steps_per_epoch=4)
    return m, net


@pytest.mark.parametrize("kind", ["elu", "softplus"])
def test_samples_have_the_dirichlet_moments_of_the_learned_concentration(kind):
    alpha = torch.tensor([[-0.7, 0.0, 0.4, 1.5]], dtype=torch.float64)
    n = 40000
    torch.manual_seed(0)
    w = DirichletSampler(kind).sample({"normal": alpha.repeat(n, 1)})["normal"]
    c = concentration(alpha[0], kind)
    c0 = c.sum()
    mean, var = c / c0, c * (c0 - c) / (c0 ** 2 * (c0 + 1))
    assert torch.allclose(w.sum(-1), torch.ones(n, dtype=torch.float64))
    se = (var / n).sqrt()
    assert ((w.mean(0) - mean).abs() < 5 * se).all()
    assert torch.allclose(w.var(0), var, rtol=0.05)
    if kind == "elu":
        assert torch.allclose(c, torch.tensor([torch.exp(torch.tensor(-0.7)).item(), 1.0, 1.4,
                                               2.5], dtype=torch.float64))


def test_samples_are_reparameterised():
    alpha = torch.zeros(3, 4, requires_grad=True)
    w = DirichletSampler().sample({"n": alpha})["n"]
    (w[:, 0] ** 2).sum().backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


def test_kl_regulariser_gradient_matches_the_closed_form():
    """d/dc_i KL(Dir(c) || Dir(1)) = (c_i - 1) psi'(c_i) - (c0 - K) psi'(c0); dc/dalpha =
    elu'(alpha) (1 above 0, exp(alpha) below)."""
    alpha = torch.tensor([[-0.5, 0.2, 1.0], [0.3, -1.2, 0.0]], dtype=torch.float64,
                         requires_grad=True)
    kl = dirichlet_kl_to_anchor(alpha)
    (grad,) = torch.autograd.grad(kl, alpha)
    a = alpha.detach()
    c = torch.where(a > 0, a + 1, torch.exp(a))
    c0 = c.sum(-1, keepdim=True)
    k = a.shape[1]
    d_c = (c - 1) * torch.polygamma(1, c) - (c0 - k) * torch.polygamma(1, c0)
    hand = d_c * torch.where(a > 0, torch.ones_like(a), torch.exp(a))
    assert torch.allclose(grad, hand, atol=1e-12)
    # the value: KL is zero at the anchor itself (alpha = 0: concentration 1)
    assert dirichlet_kl_to_anchor(torch.zeros(2, 3)).abs().item() < 1e-6


@pytest.mark.parametrize("space", SPACES)
def test_kl_mode_adds_the_scaled_regulariser_to_the_alpha_gradient_only(space):
    scale = 0.5
    m0, _ = _tiny(space)
    m1, _ = _tiny(space, kl_scale=scale)
    assert m1.alpha_opt.param_groups[0]["weight_decay"] == 0.0  # its code's kl mode
    assert m0.alpha_opt.param_groups[0]["weight_decay"] == pytest.approx(1e-3)
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(6, 1, 8, 8, generator=g), torch.randint(0, 3, (6,), generator=g))
    torch.manual_seed(2)
    g0, _ = m0.alpha_grads(batch, batch)
    torch.manual_seed(2)
    g1, _ = m1.alpha_grads(batch, batch)
    alphas = [a.detach().clone().requires_grad_() for a in m1.alphas.values()]
    reg = scale * sum(dirichlet_kl_to_anchor(a) for a in alphas)
    expected = torch.autograd.grad(reg, alphas)
    for a0, a1, r in zip(g0, g1, expected):
        assert torch.allclose(a1 - a0, r, atol=1e-6)


@pytest.mark.parametrize("space", SPACES)
def test_evaluated_at_the_mean_derived_from_softmax(space):
    m, _ = _tiny(space)
    for a in m.alphas.values():
        with torch.no_grad():
            a.copy_(torch.randn_like(a))
    w = m.mixing_weights()
    for k, a in m.alphas.items():
        c = torch.nn.functional.elu(a.detach()) + 1
        assert torch.allclose(w[k], c / c.sum(-1, keepdim=True))
    derived = m.space.derive({k: torch.softmax(a.detach(), -1) for k, a in m.alphas.items()})
    assert m.derive() == derived


@pytest.mark.parametrize("space", SPACES)
def test_training_forwards_mix_with_a_fresh_dirichlet_sample_of_the_concentration(space):
    """The supernet's training forward sees the sampled weights (not the mean): a loss
    computed with the same draw reproduces the step's, the mean's does not."""
    m, _ = _tiny(space)
    with torch.no_grad():
        for a in m.alphas.values():
            a.copy_(torch.randn_like(a))
    g = torch.Generator().manual_seed(3)
    batch = (torch.randn(6, 1, 8, 8, generator=g), torch.randint(0, 3, (6,), generator=g))
    torch.manual_seed(4)
    _, loss = m.alpha_grads(batch, batch)
    torch.manual_seed(4)
    w = {k: torch.distributions.Dirichlet(concentration(a.detach())).rsample()
         for k, a in m.alphas.items()}
    assert set(w) == set(m.space.arch_shapes())
    assert loss.item() == pytest.approx(m.loss(batch, w)[0].item(), rel=1e-5)
    assert loss.item() != pytest.approx(m.loss(batch, m.mixing_weights())[0].item(), rel=1e-5)
