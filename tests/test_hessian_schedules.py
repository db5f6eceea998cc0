from __future__ import annotations

import math

import pytest
import torch

from nasbench_eval.hessian import dominant_eigenvalue
from nasbench_eval.schedules import cosine, cosine_power, lr_at


def test_dominant_eigenvalue_matches_eigvalsh_of_explicit_hessian():
    torch.manual_seed(0)
    a = torch.randn(6, 6, dtype=torch.float64)
    x = torch.randn(32, 6, dtype=torch.float64)

    def loss(ps):
        (p,) = ps  # a non-quadratic loss of a 2 x 3 parameter
        return torch.log1p(((x @ a[:, :2]) @ p).pow(2)).mean() + 0.5 * (p ** 2).sum()

    p0 = torch.randn(2, 3, dtype=torch.float64)
    hess = torch.autograd.functional.hessian(lambda v: loss([v.view(2, 3)]), p0.flatten())
    eigs = torch.linalg.eigvalsh(hess)
    expected = eigs[eigs.abs().argmax()].item()
    got = dominant_eigenvalue(loss, [p0], iters=500, tol=1e-12)
    assert got == pytest.approx(expected, rel=1e-6)


def test_hessian_tracking_is_recorded_in_metrics(tiny_cfg):
    from dataclasses import replace
    import csv

    from nasbench_eval import run

    run_dir = run(replace(tiny_cfg, epochs=3, hessian_every=2, hessian_iters=5))
    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert [r["hessian_eig"] != "" for r in rows] == [True, False, True]  # epochs 0, 2, .. + last
    assert all(math.isfinite(float(r["hessian_eig"])) for r in rows if r["hessian_eig"])


def test_cosine_power_annealing_formula():
    lr_max, lr_min, total = 0.025, 0.001, 50
    # start and end hit the bounds whatever p is
    for p in (2.0, 10.0):
        assert cosine_power(0, total, lr_max, lr_min, p) == pytest.approx(lr_max)
        assert cosine_power(total, total, lr_max, lr_min, p) == pytest.approx(lr_min)
    # middle: cos term is 1/2, so lr = lr_min + (lr_max - lr_min) (p^1.5 - p) / (p^2 - p)
    p = 10.0
    mid = lr_min + (lr_max - lr_min) * (p ** 1.5 - p) / (p ** 2 - p)
    assert cosine_power(25, total, lr_max, lr_min, p) == pytest.approx(mid)
    assert mid < cosine(25, total, lr_max, lr_min)  # decays faster through the middle
    # p = 1 falls back to cosine
    for e in (0, 13, 25, 49):
        assert cosine_power(e, total, lr_max, lr_min, 1.0) == cosine(e, total, lr_max, lr_min)
    assert cosine(25, total, lr_max, lr_min) == pytest.approx((lr_max + lr_min) / 2)
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
