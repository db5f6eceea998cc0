"""Methods as compositions: presets, parts on any sampler, clear refusals, the label."""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
import torch
from helpers import read_metrics

from nasbench_eval.composition import PRESETS, composition_label
from nasbench_eval.config import RunConfig
from nasbench_eval.runner import run
from nasbench_eval.errors import NasbenchEvalError
from nasbench_eval.methods import create_method, method_class
from nasbench_eval.spaces import DartsSupernet, load_space

COMPOSED = ["darts", "sdarts-rs", "sdarts-adv", "pc-darts", "gdas", "drnas"]


def _tiny(method: str, space: str = "s3", **options):
    cfg = RunConfig(method=method, space=space, layers=3, channels=4, epochs=4,
                    method_options=options)
    torch.manual_seed(0)
    net = DartsSupernet(load_space(space), channels=4, layers=3, num_classes=3, in_channels=1)
    m = create_method(method)
    m.setup(net, load_space(space), cfg, steps_per_epoch=4)
    return m, net


@pytest.mark.parametrize("name", COMPOSED)
def test_every_preset_declares_its_parts_as_option_defaults(name):
    cls = method_class(name)
    for part in ("perturb", "partial_channels", "edge_norm"):
        assert cls.options[part].default == PRESETS[name][part]
    assert cls.paper and all(opt.help for opt in cls.options.values())


def test_composition_label_names_only_the_changed_parts():
    assert composition_label("darts", {}) == "darts"
    assert composition_label("sdarts-adv", {"perturb": "adversarial", "pgd_steps": 3}) \
        == "sdarts-adv"
    assert composition_label("drnas", {"perturb": "adversarial"}) \
        == "drnas+perturb=adversarial"
    assert composition_label("pc-darts", {"edge_norm": False, "partial_channels": 2}) \
        == "pc-darts+partial_channels=2+edge_norm=false"
    assert composition_label("msr", {"msr_mixing": "fixed"}) == "msr"


def test_darts_with_random_perturbation_computes_what_sdarts_rs_computes(tmp_path):
    kw = dict(space="s3", dataset="synthetic", layers=3, channels=4, epochs=2,
              progress=False)
    a = run(method="sdarts-rs", out=str(tmp_path / "a"), **kw)
    b = run(method="darts", out=str(tmp_path / "b"), method_options={"perturb": "random"}, **kw)
    ma = pd.read_csv(next((tmp_path / "a").glob("*/metrics.csv")))
    mb = pd.read_csv(next((tmp_path / "b").glob("*/metrics.csv")))
    cols = [c for c in ma.columns if c not in ("wall_time_s", "epoch_time_s", "time_s")
            and "time" not in c]
    pd.testing.assert_frame_equal(ma[cols], mb[cols])
    assert a != b  # different run ids: the composition is in the id


def test_drnas_with_adversarial_perturbation_runs_and_the_attack_raises_the_loss(tmp_path):
    run(method="drnas", space="s3", dataset="synthetic", layers=3, channels=4, epochs=2,
        out=str(tmp_path), method_options={"perturb": "adversarial", "pgd_steps": 2},
        progress=False)
    metrics = pd.read_csv(next(tmp_path.glob("*/metrics.csv")))
    assert len(metrics) == 2 and "eps" in metrics
    from nasbench_eval.analysis import load_runs
    assert load_runs(tmp_path)["method"].tolist() == ["drnas+perturb=adversarial"]

    m, net = _tiny("drnas", perturb="adversarial", eps_min=0.3, eps_max=0.3)
    g = torch.Generator().manual_seed(5)
    batches = [(torch.randn(12, 1, 8, 8, generator=g), torch.randint(0, 3, (12,), generator=g))
               for _ in range(5)]
    torch.manual_seed(3)
    for tb, vb in zip(batches[:4:2], batches[1:4:2]):
        m.step(tb, vb)
    batch = batches[-1]
    torch.manual_seed(11)
    clean = m.sample(m.alphas)
    clean = {k: v.detach() for k, v in clean.items()}
    adv = m.perturb(batch, clean, 0.3)
    assert net.training
    net.eval()
    with torch.no_grad():
        l_clean, l_adv = m.loss(batch, clean)[0].item(), m.loss(batch, adv)[0].item()
    assert l_adv > l_clean


@pytest.mark.parametrize("method,options,match", [
    ("darts", {"eps_min": 0.1}, "--eps-min apply only with --perturb random or adversarial"),
    ("sdarts-rs", {"pgd_steps": 3}, "--pgd-steps apply only with --perturb adversarial"),
    ("gdas", {"perturb": "adversarial"}, "does not apply to its gumbel-hard sampler"),
    ("drnas", {"perturb": "random", "eps_min": 0.5, "eps_max": 0.1}, "--eps-min <= --eps-max"),
    ("darts", {"perturb": "sideways"}, "perturb"),
])
def test_compositions_that_make_no_sense_are_refused_naming_the_flag(method, options, match):
    with pytest.raises(NasbenchEvalError, match=match):
        _tiny(method, **options)


def test_parts_that_need_a_seam_call_are_refused_on_a_supernet_without_it():
    from nasbench_eval.spaces.supernet import SupernetBase, SupernetSeamError

    class Bare(SupernetBase):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

    with pytest.raises(SupernetSeamError, match="partial channels"):
        Bare().set_partial_channels(4)
    with pytest.raises(SupernetSeamError, match="edge normalisation"):
        Bare().node_edges()
    Bare().set_partial_channels(1)  # off is accepted everywhere


@pytest.mark.parametrize("method,space", [("gdas", "s3"), ("drnas", "s3"), ("pc-darts", "s3"),
                                          ("gdas", "nb1shot1-1"), ("pc-darts", "nb1shot1-3")])
def test_a_resumed_search_equals_an_uninterrupted_one(tiny_cfg, tmp_path, method, space):
    # train_portion 0.9: short search-val passes (the resume is what is compared)
    cfg = replace(tiny_cfg, method=method, space=space, epochs=3, channels=8, train_portion=0.9)
    reference = run(replace(cfg, out=str(tmp_path / "straight")))

    def interrupt(epoch, row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(cfg, on_epoch_end=interrupt)
    run_dir = run(cfg, resume=True)
    assert read_metrics(run_dir) == read_metrics(reference)
