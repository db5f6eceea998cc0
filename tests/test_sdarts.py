from __future__ import annotations

import csv
import json

import pytest
import torch
import torch.nn.functional as F

from nasbench_eval import run
from nasbench_eval.config import RunConfig
from nasbench_eval.errors import NasbenchEvalError
from nasbench_eval.methods import create_method, method_class
from nasbench_eval.methods.base import method_description
from nasbench_eval.methods.sdarts import (
    clip_to_simplex, keep_if_stronger, pgd_perturbation, pgd_update, random_perturbation,
    uniform_delta)
from nasbench_eval.spaces import DartsSupernet, load_space


def _tiny(method: str, epochs: int = 4, seed: int = 0, **options):
    """3 cells, 4 channels, 8x8 single-channel inputs, 3 classes."""
    cfg = RunConfig(method=method, space="s3", layers=3, channels=4, epochs=epochs,
                    method_options=options)
    torch.manual_seed(seed)
    net = DartsSupernet(load_space("s3"), channels=4, layers=3, num_classes=3, in_channels=1)
    m = create_method(method)
    m.setup(net, load_space("s3"), cfg, steps_per_epoch=4)
    return m, net


def _batches(n: int, seed: int = 123, size: int = 12):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, 1, 8, 8, generator=g), torch.randint(0, 3, (size,), generator=g))
            for _ in range(n)]


def _on_simplex(w: torch.Tensor) -> bool:
    return bool((w >= 0).all()) and torch.allclose(w.sum(-1), torch.ones(w.shape[:-1]), atol=1e-6)


# ----------------------------------------------------------------------------- metadata

@pytest.mark.parametrize("name", ["sdarts-rs", "sdarts-adv"])
def test_registered_with_paper_description_and_option_help(name):
    cls = method_class(name)
    assert "Chen & Hsieh" in cls.paper and "ICML 2020" in cls.paper
    assert method_description(cls).startswith(name.upper() + ":")
    assert all(opt.help for opt in cls.options.values())
    assert cls.options["eps_min"].default == 0.03 and cls.options["eps_max"].default == 0.3


def test_adv_options_defaults_and_validation():
    cls = method_class("sdarts-adv")
    assert cls.options["pgd_steps"].default == 7 and cls.options["pgd_step_size"].default is None
    with pytest.raises(NasbenchEvalError):
        _tiny("sdarts-adv", pgd_steps=0)
    with pytest.raises(NasbenchEvalError):
        _tiny("sdarts-rs", eps_min=0.5, eps_max=0.1)
    with pytest.raises(NasbenchEvalError):  # RS has no PGD
        _tiny("sdarts-rs", pgd_steps=3)
    m, _ = _tiny("sdarts-adv", pgd_step_size="0.05")  # the CLI passes a None-default as text
    assert m.pgd_step_size == 0.05


# ----------------------------------------------------------------------------- clip()

def test_clip_projects_rows_onto_the_simplex():
    w = torch.tensor([[0.2, 0.3, 0.5],      # already on the simplex: unchanged
                      [1.5, 0.5, -0.2],     # clamp to [0,1] then renormalise
                      [-0.5, -0.1, -0.3],   # all negative: one-hot at the argmax
                      [0.0, 0.0, 0.0],      # all zero: one-hot at the first argmax
                      [-0.2, 0.4, 0.1]])
    out = clip_to_simplex(w)
    expected = torch.tensor([[0.2, 0.3, 0.5],
                             [1.0 / 1.5, 0.5 / 1.5, 0.0],
                             [0.0, 1.0, 0.0],
                             [1.0, 0.0, 0.0],
                             [0.0, 0.8, 0.2]])
    assert torch.allclose(out, expected, atol=1e-6)
    torch.manual_seed(0)
    rand = 3 * torch.randn(2, 14, 8)  # batched rows (cells x edges x candidates)
    assert _on_simplex(clip_to_simplex(rand))


# ----------------------------------------------------------------------------- eps ramp

def test_eps_ramps_linearly_and_is_logged():
    m, _ = _tiny("sdarts-rs", epochs=50)
    assert m.eps == pytest.approx(0.03)
    assert m.eps_at(25) == pytest.approx(0.03 + 0.27 * 0.5)
    assert m.eps_at(49) == pytest.approx(0.03 + 0.27 * 49 / 50)  # the last epoch, ~0.2946
    out = m.end_epoch(0)
    assert out["eps"] == pytest.approx(0.03) and "lr" in out  # the radius epoch 0 used
    assert m.eps == pytest.approx(0.03 + 0.27 / 50)
    m2, _ = _tiny("sdarts-adv", epochs=10, eps_min=0.1, eps_max=0.5)
    m2.epoch = 5
    assert m2.eps == pytest.approx(0.3)


# ----------------------------------------------------------------------------- RS

def test_rs_noise_in_ball_and_perturbed_rows_on_simplex():
    torch.manual_seed(0)
    clean = F.softmax(torch.randn(14, 8), -1)
    eps = 0.2
    delta = uniform_delta(clean.expand(50, 14, 8), eps)
    assert delta.abs().max() <= eps
    assert delta.max() > 0.95 * eps and delta.min() < -0.95 * eps  # fills the ball
    assert abs(delta.mean()) < 0.01  # centred
    m, _ = _tiny("sdarts-rs", epochs=2)
    m.epoch = 1  # eps = 0.165
    clean_w = m.mixing_weights()
    a = m.w_step_weights(_batches(1)[0])
    b = m.w_step_weights(_batches(1)[0])
    for k in clean_w:
        assert _on_simplex(a[k])
        assert not torch.allclose(a[k], clean_w[k], atol=1e-3)
        assert not torch.equal(a[k], b[k])  # fresh noise every step


def test_rs_is_reproducible_from_the_global_seed():
    m, _ = _tiny("sdarts-rs")
    torch.manual_seed(7)
    a = m.w_step_weights(_batches(1)[0])
    torch.manual_seed(7)
    b = m.w_step_weights(_batches(1)[0])
    assert all(torch.equal(a[k], b[k]) for k in a)


def _one_step(method: str, **options):
    m, net = _tiny(method, **options)
    tb, vb = _batches(2)
    torch.manual_seed(1)
    m.step(tb, vb)
    return ({k: v.detach().clone() for k, v in m.alphas.items()},
            [p.detach().clone() for p in net.parameters()])


def test_rs_changes_the_w_step_not_the_alpha_step():
    a_darts, w_darts = _one_step("darts")
    a_rs, w_rs = _one_step("sdarts-rs")
    for k in a_darts:
        assert torch.equal(a_darts[k], a_rs[k])  # alpha step: the clean softmax, same result
    assert any(not torch.allclose(p, q, atol=1e-7) for p, q in zip(w_darts, w_rs))
    # with a zero radius the only difference from DARTS is gone
    a0, w0 = _one_step("sdarts-rs", eps_min=0.0, eps_max=0.0)
    assert all(torch.allclose(p, q, atol=1e-6) for p, q in zip(w_darts, w0))


# ----------------------------------------------------------------------------- ADV pieces

def test_pgd_update_clamps_delta_then_projects():
    torch.manual_seed(0)
    clean = F.softmax(torch.randn(14, 5), -1)
    w = clip_to_simplex(clean + uniform_delta(clean, 0.1))
    grad = torch.randn(14, 5)
    for eps, step in [(0.1, 0.5), (0.1, 0.01), (0.3, 2 * 0.3 / 7)]:
        delta, projected = pgd_update(w, grad, clean, eps, step)
        assert delta.abs().max() <= eps + 1e-7  # within the ball before renormalisation
        assert torch.allclose(projected, clip_to_simplex(clean + delta))
        assert _on_simplex(projected)
        # an entry moves along sign(grad) unless the ball clamps it
        moved = (w + step * grad.sign() - clean).abs() < eps
        assert torch.allclose(delta[moved], (w + step * grad.sign() - clean)[moved])
    big_step_delta, _ = pgd_update(w, grad, clean, 0.1, 0.5)
    assert torch.allclose(big_step_delta, 0.1 * grad.sign())  # a huge step lands on a corner


def test_keep_if_stronger_reverts_on_device():
    clean = {"normal": torch.zeros(2, 3)}
    pert = {"normal": torch.ones(2, 3)}
    kept = keep_if_stronger(pert, clean, torch.tensor(2.0), torch.tensor(1.0))
    assert torch.equal(kept["normal"], pert["normal"])
    kept = keep_if_stronger(pert, clean, torch.tensor(2.0), torch.tensor(2.0))  # tie: perturbed
    assert torch.equal(kept["normal"], pert["normal"])
    reverted = keep_if_stronger(pert, clean, torch.tensor(0.5), torch.tensor(1.0))
    assert torch.equal(reverted["normal"], clean["normal"])


def test_pgd_reverts_when_every_perturbation_lowers_the_loss():
    torch.manual_seed(0)
    clean = {"normal": F.softmax(torch.randn(6, 4), -1), "reduce": F.softmax(torch.randn(6, 4), -1)}

    def peaked(w):  # the clean weights are the unique maximiser
        return -sum(((w[k] - clean[k]) ** 2).sum() for k in clean)

    for steps in (1, 7):
        out = pgd_perturbation(peaked, clean, eps=0.2, steps=steps)
        assert all(torch.equal(out[k], clean[k]) for k in clean)


def test_pgd_maximises_a_linear_loss():
    torch.manual_seed(0)
    clean = {"normal": F.softmax(torch.randn(6, 4), -1)}
    c = torch.randn(6, 4)

    def linear(w):
        return (c * w["normal"]).sum()

    out = pgd_perturbation(linear, clean, eps=0.1, steps=7)["normal"]
    assert _on_simplex(out)
    assert linear({"normal": out}) > linear(clean)
    # better than any random point of the ball
    rs = [linear(random_perturbation(clean, 0.1)) for _ in range(20)]
    assert linear({"normal": out}) >= max(rs)
    with pytest.raises(ValueError):
        pgd_perturbation(linear, clean, eps=0.1, steps=0)


# ----------------------------------------------------------------------------- ADV on a supernet

def _warmed_up(method: str, **options):
    m, net = _tiny(method, **options)
    torch.manual_seed(3)
    batches = _batches(7, seed=5)
    for tb, vb in zip(batches[:-1:2], batches[1:-1:2]):
        m.step(tb, vb)
    return m, net, batches[-1]


def _eval_loss(m, net, batch, weights) -> float:
    net.eval()
    with torch.no_grad():
        loss = m.loss(batch, weights)[0].item()
    net.train()
    return loss


def test_adv_raises_the_training_loss_beyond_random_and_clean():
    m, net, batch = _warmed_up("sdarts-adv", eps_min=0.3, eps_max=0.3)
    clean = m.mixing_weights()
    torch.manual_seed(11)
    adv = m.w_step_weights(batch)
    assert net.training  # back in train mode for the w step
    assert all(_on_simplex(w) for w in adv.values())
    l_clean = _eval_loss(m, net, batch, clean)
    l_adv = _eval_loss(m, net, batch, adv)
    l_rs = sum(_eval_loss(m, net, batch, random_perturbation(clean, 0.3)) for _ in range(8)) / 8
    assert l_adv > l_clean
    assert l_adv >= l_rs


def test_adv_attack_leaves_supernet_grads_and_bn_stats_alone():
    m, net, batch = _warmed_up("sdarts-adv", pgd_steps=2)
    for p in net.parameters():
        p.grad = None
    stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    alphas = {k: v.detach().clone() for k, v in m.alphas.items()}
    alpha_grads = {k: v.grad.clone() for k, v in m.alphas.items()}  # left by the alpha step
    m.w_step_weights(batch)
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in stats.items())  # eval mode
    assert all(torch.equal(alphas[k], m.alphas[k]) for k in alphas)
    assert all(torch.equal(alpha_grads[k], m.alphas[k].grad) for k in alphas)


@pytest.mark.parametrize("steps", [1, 3])
def test_adv_runs_the_requested_number_of_pgd_steps(steps):
    m, net, batch = _warmed_up("sdarts-adv", pgd_steps=steps)
    calls = []
    hook = net.register_forward_hook(lambda mod, inp, out: calls.append(torch.is_grad_enabled()))
    try:
        weights = m.w_step_weights(batch)
    finally:
        hook.remove()
    # one differentiated forward per PGD step, then the perturbed and the clean loss
    assert calls == [True] * steps + [False, False]
    assert all(_on_simplex(w) for w in weights.values())
    a_before = {k: v.detach().clone() for k, v in m.alphas.items()}
    out = m.step(*_batches(2, seed=9))
    assert torch.isfinite(out["train_loss"])
    assert all(not torch.equal(a_before[k], m.alphas[k]) for k in m.alphas)


def test_adv_alpha_step_matches_darts():
    a_darts, w_darts = _one_step("darts")
    a_adv, w_adv = _one_step("sdarts-adv", pgd_steps=1)
    assert all(torch.equal(a_darts[k], a_adv[k]) for k in a_darts)
    assert any(not torch.allclose(p, q, atol=1e-7) for p, q in zip(w_darts, w_adv))


# ----------------------------------------------------------------------------- end to end

@pytest.mark.parametrize("method,options", [("sdarts-rs", {}), ("sdarts-adv", {"pgd_steps": 2})])
def test_search_end_to_end(tmp_path, method, options):
    run_dir = run(method=method, space="s3", dataset="digits", epochs=1, layers=3, channels=4,
                  batch_size=16, max_steps_per_epoch=2, bn_recalibration_batches=1,
                  progress=False, out=str(tmp_path), method_options=options)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["method"] == method
    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and float(rows[0]["eps"]) == pytest.approx(0.03)
    assert float(rows[0]["train_loss"]) > 0
