from __future__ import annotations

import math

import pytest
import torch

from nasbench_eval.hessian import dominant_eigenvalue, lanczos_max_eigenvalue, max_eigenvalue
from nasbench_eval.schedules import ScheduleError, cosine, cosine_power, lr_at


def _negative_dominated_loss():
    """A non-quadratic loss of a 2 x 3 parameter whose Hessian at p0 has its most negative
    eigenvalue larger in magnitude than its most positive one (the case issue 16 is about)."""
    torch.manual_seed(0)
    x = torch.randn(32, 6, dtype=torch.float64)
    a = torch.randn(6, 6, dtype=torch.float64)
    q = torch.diag(torch.tensor([-3.0, -1.0, 0.2, 0.5, 1.0, -0.4], dtype=torch.float64))
    basis, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    quad = basis @ q @ basis.T

    def loss(ps):
        (p,) = ps
        v = p.reshape(-1)
        return 0.5 * v @ quad @ v + 0.1 * torch.log1p(((x @ a[:, :2]) @ p).pow(2)).mean()

    p0 = 0.3 * torch.randn(2, 3, dtype=torch.float64)
    hess = torch.autograd.functional.hessian(lambda v: loss([v.view(2, 3)]), p0.flatten())
    return loss, p0, torch.linalg.eigvalsh(hess)


def test_max_eigenvalue_is_the_algebraic_maximum_not_the_largest_magnitude():
    loss, p0, eigs = _negative_dominated_loss()
    assert eigs.min().abs() > eigs.max().abs() > 0 and eigs.max() > 0  # the hard case
    got = max_eigenvalue(loss, [p0])
    assert got == pytest.approx(eigs.max().item(), rel=1e-9, abs=1e-12)
    # the decay term adds wd * I (RobustDARTS differentiates the gradient with it)
    assert max_eigenvalue(loss, [p0], weight_decay=1e-3) == pytest.approx(
        eigs.max().item() + 1e-3, rel=1e-9)
    # the old estimate (power iteration) returns the negative end here
    old = dominant_eigenvalue(loss, [p0], iters=2000, tol=1e-12)
    assert old == pytest.approx(eigs.min().item(), rel=1e-6)


def test_lanczos_with_few_iterations_restarts_until_converged():
    torch.manual_seed(3)
    basis, _ = torch.linalg.qr(torch.randn(40, 40, dtype=torch.float64))
    evals = torch.linspace(-5.0, 1.0, 40, dtype=torch.float64)  # negative end dominates
    h = basis @ torch.diag(evals) @ basis.T
    got = lanczos_max_eigenvalue(lambda v: h @ v, 40, iters=8, tol=1e-10, restarts=200)
    assert got == pytest.approx(1.0, abs=1e-6)
    # a full Krylov space is exact
    assert lanczos_max_eigenvalue(lambda v: h @ v, 40, iters=40) == pytest.approx(1.0, abs=1e-9)
    assert lanczos_max_eigenvalue(lambda v: 2.5 * v, 1) == pytest.approx(2.5)


def test_method_hessian_eigenvalue_is_lambda_max_of_the_explicit_hessian():
    """GradientMethod.hessian_eigenvalue on a supernet state whose negative end dominates:
    lambda_max of the explicit Hessian (darts-es's full_hessian, RobustDARTS's Analyzer) with
    the decay term, and without it on request."""
    from nasbench_eval.config import RunConfig
    from nasbench_eval.methods import create_method
    from nasbench_eval.methods.darts_es import full_hessian
    from nasbench_eval.spaces import DartsSupernet, load_space

    torch.manual_seed(0)
    space = load_space("s3")
    net = DartsSupernet(space, 4, 3, 10, 1).double()
    m = create_method("darts")
    m.setup(net, space, RunConfig(epochs=2, layers=3, channels=4, hessian_iters=30), 1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 1, 8, 8, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (16,), generator=g)
    keys = list(m.alphas)

    def loss(a):
        return m.loss((x, y), m.mixing(dict(zip(keys, a))), autocast=False)[0]

    for seed in range(20):  # alphas ~ N(0, 1) (issue 16: -0.967 vs +0.728 in this regime)
        with torch.no_grad():
            gen = torch.Generator().manual_seed(seed)
            for a in m.alphas.values():
                a.copy_(torch.randn(a.shape, generator=gen, dtype=a.dtype))
        net.train()
        with torch.random.fork_rng():
            torch.manual_seed(0)
            eigs = torch.linalg.eigvalsh(full_hessian(loss, list(m.alphas.values())))
        if eigs.min().abs() > eigs.max().abs():
            break
    else:
        pytest.fail("no state with a dominant negative eigenvalue found")
    wd = m.cfg.alpha_weight_decay
    assert m.hessian_eigenvalue((x, y)) == pytest.approx(eigs.max().item() + wd, rel=1e-6)
    assert m.hessian_eigenvalue((x, y), weight_decay=False) == pytest.approx(
        eigs.max().item(), rel=1e-6)
    assert m.hessian_metrics((x, y)) == {"hessian_eig": pytest.approx(eigs.max().item() + wd,
                                                                       rel=1e-6),
                                         "hessian_eig_wd": wd}


def test_hessian_tracking_is_recorded_in_metrics(tiny_cfg):
    from dataclasses import replace
    import csv

    from nasbench_eval import run

    run_dir = run(replace(tiny_cfg, epochs=3, hessian_every=2, hessian_iters=5))
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [r["hessian_eig"] != "" for r in rows] == [True, False, True]  # epochs 0, 2, .. + last
    assert all(math.isfinite(float(r["hessian_eig"])) for r in rows if r["hessian_eig"])
    # the convention is in the metrics: the decay term included (RobustDARTS's lambda_max)
    assert [r["hessian_eig_wd"] for r in rows] == ["0.001", "", "0.001"]


def test_cosine_power_annealing_matches_sharpdarts_formula_and_normalisation():
    """Values worked out by hand from sharpDARTS's Eq. 2 and its code's normalisation over
    epochs k = 1..T (our epoch e is its k = e + 1), warm-up k / (W + 1) for k <= W + 1."""
    # the search setting: T = 50, p = 2, 5 warm-up epochs, 0.025 down to 1e-4
    lr = lambda e: cosine_power(e, 50, 0.025, 1e-4, 2.0, warmup=5)  # noqa: E731
    assert lr(0) == pytest.approx(1e-4 + 0.0249 / 6, rel=1e-12)  # k=1: 1/6 = 0.00425
    assert lr(4) == pytest.approx(0.02085, rel=1e-12)  # k=5: 5/6
    assert lr(5) == pytest.approx(0.025, rel=1e-12)  # k=6: end of the warm-up
    # k=7: k'=2 of T'=45, c=(1+cos(2 pi/45))/2, lr = 1e-4 + 0.0249 (2^(c+1) - 2) / (4 - 2)
    assert lr(6) == pytest.approx(0.024832315992062, rel=1e-12)
    assert lr(24) == pytest.approx(0.012598225850026, rel=1e-12)  # k=25: k'=20
    assert lr(49) == pytest.approx(1e-4, rel=1e-12)  # the last epoch ends at the minimum
    # no warm-up: normalised over k = 1..T, so epoch 0 is lr_max and the last lr_min
    assert cosine_power(0, 10, 0.025, 1e-4, 2.0) == pytest.approx(0.025, rel=1e-12)
    assert cosine_power(9, 10, 0.025, 1e-4, 2.0) == pytest.approx(1e-4, rel=1e-12)
    # k=5 of 10: c = 1/2, top = 2^(c(1)+1) = 3.932722138653, (2^1.5 - 2) / (top - 2)
    assert cosine_power(4, 10, 0.025, 1e-4, 2.0) == pytest.approx(0.010772944130786, rel=1e-12)
    # p = 1: the code's cosine special case, normalised the same way: c(k) / c(1)
    assert cosine_power(4, 10, 0.025, 0.001, 1.0) == pytest.approx(0.013301027571243,
                                                                    rel=1e-12)
    # beyond the code: a run shorter than the warm-up only warms up; one epoch is lr_max
    assert [cosine_power(e, 3, 0.025, 1e-4, 2.0, warmup=5) for e in range(3)] == pytest.approx(
        [1e-4 + 0.0249 * k / 6 for k in (1, 2, 3)], rel=1e-12)
    assert cosine_power(0, 1, 0.025, 1e-4, 2.0) == 0.025
    with pytest.raises(ScheduleError, match="p >= 1"):
        cosine_power(0, 10, 0.025, 1e-4, 0.5)


def test_plain_cosine_stays_and_refuses_a_warmup():
    lr_max, lr_min, total = 0.025, 0.001, 50
    assert cosine(0, total, lr_max, lr_min) == lr_max
    assert cosine(25, total, lr_max, lr_min) == pytest.approx((lr_max + lr_min) / 2)
    assert lr_at("cosine", 13, total, lr_max, lr_min) == cosine(13, total, lr_max, lr_min)
    with pytest.raises(ScheduleError, match="--lr-warmup 0"):
        lr_at("cosine", 0, total, lr_max, lr_min, warmup=5)
    with pytest.raises(Exception, match="valid choices: cosine, cosine-power"):
        lr_at("linear", 0, total, lr_max, lr_min)


def test_method_follows_the_selected_schedule():
    from nasbench_eval.config import RunConfig
    from nasbench_eval.methods import create_method
    from nasbench_eval.spaces import DartsSupernet, load_space

    cfg = RunConfig(epochs=10, lr_schedule="cosine-power", lr_power=5.0)
    m = create_method("darts")
    m.setup(DartsSupernet(load_space("s2"), 4, 3, 10, 1), load_space("s2"), cfg, 1)
    lrs = []
    for e in range(10):
        lrs.append(m.end_epoch(e)["lr"])
    assert lrs == pytest.approx([cosine_power(e, 10, 0.025, 0.001, 5.0) for e in range(10)])


def test_maxw_defaults_to_sharpdarts_schedule_and_keeps_plain_cosine():
    from nasbench_eval.config import RunConfig
    from nasbench_eval.methods import create_method
    from nasbench_eval.resolve import resolve_config
    from nasbench_eval.spaces import DartsSupernet, load_space

    cfg = resolve_config(RunConfig(method="maxw", epochs=50))
    assert (cfg.lr_schedule, cfg.lr_power, cfg.lr_warmup, cfg.w_lr_min) == (
        "cosine-power", 2.0, 5, 1e-4)
    darts = resolve_config(RunConfig(method="darts", epochs=50))
    assert (darts.lr_schedule, darts.lr_warmup, darts.w_lr_min) == ("cosine", 0, 0.001)
    # the run id of every other method is what it was (lr_warmup 0 is left out of it)
    assert "lr_warmup" in darts.to_dict() and darts.fingerprint() == resolve_config(
        RunConfig(method="darts", epochs=50, lr_schedule="cosine", w_lr_min=0.001)).fingerprint()
    m = create_method("maxw")
    space = load_space("s2")
    m.setup(DartsSupernet(space, 4, 3, 10, 1), space, cfg, 1)
    lrs = [m.lr] + [m.end_epoch(e)["lr"] for e in range(49)][1:] + [m.lr]
    assert lrs == pytest.approx([cosine_power(e, 50, 0.025, 1e-4, 2.0, 5) for e in range(50)])
    plain = resolve_config(RunConfig(method="maxw", epochs=50, lr_schedule="cosine",
                                     lr_warmup=0, w_lr_min=0.001))
    m = create_method("maxw")
    m.setup(DartsSupernet(space, 4, 3, 10, 1), space, plain, 1)
    assert [m.end_epoch(e)["lr"] for e in range(3)] == pytest.approx(
        [cosine(e, 50, 0.025, 0.001) for e in range(3)])
    # a config.json from before lr_warmup existed ran without a warm-up
    old = {k: v for k, v in plain.to_dict().items() if k != "lr_warmup"}
    assert RunConfig.from_dict(old).lr_warmup == 0
