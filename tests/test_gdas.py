"""GDAS: one sampled candidate per edge computed, the straight-through gradient, tau."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from nasbench_eval import run
from nasbench_eval.config import RunConfig
from nasbench_eval.methods import create_method
from nasbench_eval.methods.samplers import SinglePath, gdas_tau, gumbel_hard
from nasbench_eval.spaces import load_space


SPACES = ["darts", "nb1shot1-1", "nb1shot1-3", "nb201"]
"""DARTS cells, NAS-Bench-1Shot1 (a choice block's mixed op is the edge; its parent and
output rows are sampled relaxed, as NAS-Bench-1Shot1's GDAS) and NAS-Bench-201 cells."""


def _tiny(space: str = "darts", dtype=torch.float32, **options):
    cfg = RunConfig(method="gdas", space=space, layers=3, channels=4, epochs=5,
                    method_options=options)
    torch.manual_seed(0)
    net = load_space(space).build_supernet(4, 3, 3, 1).to(dtype)
    m = create_method("gdas")
    m.setup(net, load_space(space), cfg, steps_per_epoch=4)
    return m, net


def _batch(dtype=torch.float32, n: int = 6):
    g = torch.Generator().manual_seed(7)
    return torch.randn(n, 1, 8, 8, generator=g).to(dtype), torch.randint(0, 3, (n,), generator=g)


def test_tau_falls_linearly_from_tau_max_to_tau_min_over_the_epochs():
    assert gdas_tau(0, 50, 10.0, 0.1) == 10.0
    assert gdas_tau(49, 50, 10.0, 0.1) == pytest.approx(0.1)
    assert gdas_tau(10, 51, 10.0, 0.1) == pytest.approx(10.0 - 9.9 * 10 / 50)
    assert gdas_tau(0, 1, 10.0, 0.1) == 10.0


def test_tau_is_logged_per_epoch(tmp_path):
    run(method="gdas", space="s3", dataset="synthetic", layers=3, channels=4, epochs=3,
        out=str(tmp_path), progress=False)
    metrics = pd.read_csv(next(tmp_path.glob("*/metrics.csv")))
    assert metrics["tau"].tolist() == pytest.approx([10.0, 5.05, 0.1])


@pytest.mark.parametrize("space", SPACES)
def test_forward_computes_exactly_the_sampled_candidate_of_every_edge(space):
    m, net = _tiny(space)
    cands = list(net.candidates())
    ran: list[tuple[int, int, int]] = []
    for c in cands:
        c.module.register_forward_hook(
            lambda mod, i, o, c=c: ran.append((c.cell, c.edge, c.column)))
    torch.manual_seed(1)
    w = m.sample(m.alphas)
    hard = {c.cell_type for c in cands}
    assert set(m.sampler.relaxed_keys) == set(w) - hard  # nb1shot1: parents and output
    for k, v in w.items():
        one_hot = bool(((v.detach() == 0) | (v.detach() == 1)).all())
        assert one_hot == (k in hard)  # the relaxed rows are a soft sample on the simplex
        assert torch.allclose(v.detach().sum(-1), torch.ones(v.shape[0]))
    with m.training_edges():
        net(_batch()[0], w)
    chosen = m.single_path.columns
    # each chosen candidate once, nothing else (a sampled 'none' has no module: nothing)
    assert sorted(ran) == sorted((c.cell, c.edge, c.column) for c in cands
                                 if c.column == chosen[c.cell_type][c.edge])
    cells = {c.cell for c in cands}
    rows = {(c.cell, c.cell_type, c.edge) for c in cands}
    assert len(ran) <= len(rows) and {r[0] for r in ran} <= cells
    if space.startswith("nb1shot1"):  # maxpool has no parameters but is a module: never 0
        assert len(ran) == len(rows)
    # outside the training scope the supernet mixes every candidate again
    ran.clear()
    net(_batch()[0], m.mixing_weights())
    assert len(ran) == len(cands)


@pytest.mark.parametrize("space", SPACES)
def test_alpha_gradient_is_the_straight_through_estimator_by_hand(space):
    """d loss / d alpha = J^T G per row: G = d loss / d (the sampled weights, at their
    values), J = d p / d alpha = (diag(p) - p p^T)(I - 1 s^T) / tau with
    p = softmax((log_softmax(alpha) + g) / tau), s = softmax(alpha). Hard rows use the
    one-hot value (straight-through: G is nonzero only at the sampled column, the others
    are not computed); relaxed rows (nb1shot1's parents and output) are p itself."""
    m, net = _tiny(space, dtype=torch.float64)
    m.alphas = {k: (torch.randn_like(v, dtype=torch.float64)).requires_grad_()
                for k, v in m.alphas.items()}
    m.sampler.tau = 2.0
    x, y = _batch(torch.float64)
    torch.manual_seed(5)
    with m.training_edges():
        w = m.sample(m.alphas)
        loss, _ = m.loss((x, y), w)
    auto = torch.autograd.grad(loss, list(m.alphas.values()))
    # the same Gumbel noise, drawn in the same order
    torch.manual_seed(5)
    gumbels = {k: -torch.empty_like(a).exponential_().log() for k, a in m.alphas.items()}
    # G: the loss as a function of the weights (value-identical to the sample)
    values = {k: v.detach().clone().requires_grad_() for k, v in w.items()}
    with m.training_edges():
        loss2, _ = m.loss((x, y), values)
    assert loss2.item() == pytest.approx(loss.item(), rel=1e-12)
    G = torch.autograd.grad(loss2, list(values.values()))
    for (k, a), g_auto, g_w in zip(m.alphas.items(), auto, G):
        a = a.detach()
        s = torch.softmax(a, -1)
        p = torch.softmax((torch.log_softmax(a, -1) + gumbels[k]) / 2.0, -1)
        hard = k not in m.sampler.relaxed_keys
        if not hard:
            assert torch.allclose(values[k].detach(), p, atol=1e-14)
        for e in range(a.shape[0]):
            if hard:
                j = m.single_path.columns[k][e]
                assert int(p[e].argmax()) == j
                # only the sampled column carries a gradient in GDAS's DARTS-space form
                assert torch.count_nonzero(g_w[e]) <= 1 and (
                    g_w[e][j] != 0 or g_w[e].abs().sum() == 0)
            dp_dz = torch.diag(p[e]) - torch.outer(p[e], p[e])
            dz_da = (torch.eye(len(s[e])) - torch.outer(torch.ones_like(s[e]), s[e])) / 2.0
            hand = (dp_dz @ dz_da).T @ g_w[e]
            assert torch.allclose(g_auto[e], hand, atol=1e-12, rtol=1e-10)


def test_gumbel_hard_value_is_one_hot_and_frequencies_follow_softmax():
    torch.manual_seed(0)
    alpha = torch.tensor([[0.0, 1.0, -1.0, 0.5]]).repeat(40000, 1)
    w, idx = gumbel_hard(alpha, tau=1.0)
    assert torch.equal(w.detach().sum(-1), torch.ones(40000))
    freq = torch.bincount(idx, minlength=4).double() / 40000
    assert torch.allclose(freq, torch.softmax(alpha[0].double(), -1), atol=0.01)


@pytest.mark.parametrize("space", ["darts", "nb201"])
def test_unselected_sum_mode_adds_the_other_weights_as_scalars(space):
    m, net = _tiny(space, dtype=torch.float64, gdas_unselected="sum")
    assert isinstance(m.single_path, SinglePath) and m.single_path.unselected == "sum"
    with torch.no_grad():  # sample candidates with a module: a sampled 'none' everywhere
        for c in net.candidates():  # can leave the loss flat (ReLU at 0 in nb201's cell)
            m.alphas[c.cell_type][c.edge, c.column] = 3.0
    x, y = _batch(torch.float64)
    torch.manual_seed(3)
    w = m.sample(m.alphas)
    w = {k: v.detach().requires_grad_() for k, v in w.items()}
    with m.training_edges():
        loss, _ = m.loss((x, y), w)
    grads = torch.autograd.grad(loss, list(w.values()))
    # an unsampled column gets a gradient (the sum of the edge's upstream gradient) now
    assert any(bool((g != 0).sum(-1).gt(1).any()) for g in grads)


def test_gdas_refuses_a_perturbation_and_a_supernet_without_edge_forward():
    from nasbench_eval.errors import NasbenchEvalError
    with pytest.raises(NasbenchEvalError, match="--perturb random does not apply"):
        _tiny(perturb="random")
    with pytest.raises(NasbenchEvalError, match="tau"):
        _tiny(tau_min=5.0, tau_max=1.0)
