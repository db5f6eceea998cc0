"""The evaluation stage: discrete network, drop-path, auxiliary head, counts, training loop."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import nasbench_eval
from nasbench_eval.errors import NasbenchEvalError, RunDirError
from nasbench_eval.cli.evaluate import evaluate as evaluate_cmd
from nasbench_eval.spaces.darts.genotype import Genotype
from nasbench_eval.spaces.darts.ops import FactorizedReduce, Identity
from nasbench_eval.evaluation import (EvalConfig, count_macs, count_parameters, evaluate,
                                      family_of, genotype_from_json, read_evaluation)
from nasbench_eval.spaces.darts.network import (AuxiliaryHead, DiscreteCell, DiscreteNetwork,
                                                drop_path)

# DARTS (Liu et al. 2019) "DARTS_V2", as published in quark0/darts cnn/genotypes.py
DARTS_V2 = {
    "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["sep_conv_3x3", 1],
               ["sep_conv_3x3", 1], ["skip_connect", 0], ["skip_connect", 0], ["dil_conv_3x3", 2]],
    "normal_concat": [2, 3, 4, 5],
    "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1],
               ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2], ["max_pool_3x3", 1]],
    "reduce_concat": [2, 3, 4, 5],
}
TINY = {"layers": 3, "channels": 8, "device": "cpu", "progress": False}


def _strip_times(curve):
    return [{k: v for k, v in r.items() if not k.endswith("time_s")} for r in curve]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """A finished (tiny) DARTS search on digits, as the issue's "Done when" asks."""
    out = tmp_path_factory.mktemp("search")
    return nasbench_eval.run(method="darts", space="s3", dataset="digits", epochs=1, layers=3,
                             channels=4, batch_size=16, max_steps_per_epoch=2,
                             bn_recalibration_batches=1, progress=False, out=str(out))


# ------------------------------------------------------------------ the evaluation of a run

def test_evaluate_finished_digits_run_writes_evaluation_json(digits_run):
    out = evaluate(digits_run, epochs=2, **TINY)
    assert out == digits_run  # evaluation.json lies beside the run it evaluated
    doc = read_evaluation(out)
    assert doc["status"] == "finished" and doc["epochs_done"] == 2
    assert doc["source_run"]["run_id"] == digits_run.name and doc["space"] == "s3"
    assert len(doc["curve"]) == 2
    for row in doc["curve"]:
        assert 0.0 <= row["train_error"] <= 1.0 and 0.0 <= row["test_error"] <= 1.0
        assert "train_aux_loss" in row  # the auxiliary head trained
    assert doc["final_test_error"] == doc["curve"][-1]["test_error"]
    assert [r["drop_path"] for r in doc["curve"]] == [0.0, 0.1]  # 0.2 ramped over 2 epochs
    assert [r["lr"] for r in doc["curve"]] == pytest.approx([0.025, 0.0125])
    assert 0 < doc["params"] < doc["params_with_auxiliary"] and doc["macs"] > 0
    s = doc["settings"]
    assert (s["layers"], s["channels"], s["epochs"], s["cutout"], s["drop_path"],
            s["auxiliary"], s["lr"], s["weight_decay"], s["grad_clip"]) == \
        (3, 8, 2, 4, 0.2, 0.4, 0.025, 3e-4, 5.0)
    assert doc["environment"]["torch"] == torch.__version__
    assert (out / "evaluation_metrics.csv").read_text().count("\n") == 3
    assert (out / "evaluation_checkpoint.pt").exists()
    with pytest.raises(RunDirError, match="--resume"):
        evaluate(digits_run, epochs=2, **TINY)
    assert evaluate(digits_run, epochs=2, resume=True, **TINY) == out  # finished: no work
    with pytest.raises(RunDirError, match="other settings"):
        evaluate(digits_run, epochs=3, **TINY)


def test_resume_after_interrupt_equals_uninterrupted(tmp_path):
    kw = dict(genotype=DARTS_V2, dataset="digits", epochs=3, max_steps_per_epoch=3,
              batch_size=32, **TINY)
    whole = evaluate(out=str(tmp_path / "a"), **kw)

    def stop_after_first(epoch, row):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        evaluate(out=str(tmp_path / "b"), on_epoch_end=stop_after_first, **kw)
    part = next((tmp_path / "b").iterdir())
    assert read_evaluation(part)["status"] == "interrupted"
    assert read_evaluation(part)["epochs_done"] == 1
    resumed = evaluate(out=str(tmp_path / "b"), resume=True, **kw)
    a, b = read_evaluation(whole), read_evaluation(resumed)
    assert b["status"] == "finished" and b["resumed"][0]["at_epoch"] == 1
    assert _strip_times(a["curve"]) == _strip_times(b["curve"])
    sa = torch.load(whole / "evaluation_checkpoint.pt", weights_only=False)["model"]
    sb = torch.load(resumed / "evaluation_checkpoint.pt", weights_only=False)["model"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_nan_loss_ends_with_status_diverged(tmp_path, monkeypatch):
    # a NaN learning rate is refused up front now (--lr names it); make the loss NaN instead
    real = torch.nn.functional.cross_entropy
    monkeypatch.setattr(torch.nn.functional, "cross_entropy",
                        lambda *a, **k: real(*a, **k) * float("nan"))
    out = evaluate(genotype=DARTS_V2, dataset="digits", epochs=2, max_steps_per_epoch=2,
                   out=str(tmp_path), **TINY)
    doc = read_evaluation(out)
    assert doc["status"] == "diverged" and doc["diverged_at_epoch"] == 0
    assert doc["epochs_done"] == 0 and not (out / "evaluation_checkpoint.pt").exists()



# the document's layout (key order) as train.evaluate wrote it at 3e5e372
EVALUATION_KEYS = ["eval_id", "fingerprint", "status", "family", "space", "source_run",
                   "genotype", "genotype_str", "dataset", "seed", "epochs", "settings",
                   "input_shape", "num_classes", "params", "params_with_auxiliary", "params_M",
                   "macs", "steps_per_epoch", "environment", "epochs_done", "wall_time_s",
                   "final_test_error", "final_train_error", "best_test_error", "curve"]


def test_evaluation_id_and_document_layout_are_todays(tmp_path):
    import hashlib

    cfg = EvalConfig(dataset="digits", epochs=1, max_steps_per_epoch=1, batch_size=32, **TINY)
    cfg = cfg.resolved("darts-cell", "darts")
    genotype = genotype_from_json(DARTS_V2)
    # the id hash of 3e5e372 (train._fingerprint): settings without execution fields + genotype
    d = {k: v for k, v in cfg.to_dict().items()
         if k not in {"device", "out", "data_root", "progress"}}
    d["genotype"] = genotype.to_dict()
    old = hashlib.sha1(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:8]
    assert cfg.fingerprint(genotype) == old
    out = evaluate(genotype=DARTS_V2, dataset="digits", epochs=1, max_steps_per_epoch=1,
                   batch_size=32, out=str(tmp_path), **TINY)
    assert out.name == f"eval-digits-seed0-{old}"
    doc = read_evaluation(out)
    assert list(doc) == EVALUATION_KEYS and doc["fingerprint"] == old
    with pytest.raises(RunDirError) as exc:
        evaluate(genotype=DARTS_V2, dataset="digits", epochs=1, max_steps_per_epoch=1,
                 batch_size=32, out=str(tmp_path), **TINY)
    assert str(exc.value) == (f"{out} already holds this evaluation (status: finished); pass "
                              f"--resume (resume=True) to continue it")


def test_an_exception_leaves_the_evaluation_running_and_resumable(tmp_path):
    kw = dict(genotype=DARTS_V2, dataset="digits", epochs=2, max_steps_per_epoch=1,
              batch_size=32, out=str(tmp_path), **TINY)

    def fail_after_first(epoch, row):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        evaluate(on_epoch_end=fail_after_first, **kw)
    out = next(tmp_path.iterdir())
    doc = read_evaluation(out)
    assert doc["status"] == "running" and doc["epochs_done"] == 1  # not "failed", as before
    first_env = doc["environment"]
    doc = read_evaluation(evaluate(resume=True, **kw))
    assert doc["status"] == "finished" and doc["epochs_done"] == 2
    assert doc["environment"] == first_env and doc["resumed"][0]["at_epoch"] == 1
    assert list(doc) == EVALUATION_KEYS[:20] + ["resumed"] + EVALUATION_KEYS[20:]

# --------------------------------------------------------------- network and its counts

def test_darts_v2_parameter_count_is_the_papers_3_3m():
    net = DiscreteNetwork(Genotype.from_dict(DARTS_V2), 36, 20, 10, 3, auxiliary=True)
    counts = count_parameters(net)
    # the paper's 3.3M excludes the auxiliary head (DARTS counts parameters without it)
    assert counts["params"] == pytest.approx(3.3e6, abs=0.1e6)
    assert counts["params_with_auxiliary"] > 3.4e6  # with the head it would not match
    assert count_macs(net, (3, 32, 32)) > 0


def test_count_macs_by_hand():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(32, 3))
    assert count_macs(model, (1, 4, 4)) == 16 * 2 * 9 + 32 * 3
    grouped = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)
    assert count_macs(grouped, (4, 5, 5)) == 25 * 4 * 9


def test_drop_path_is_identity_at_zero_and_in_eval_mode():
    x = torch.randn(64, 3, 4, 4)
    assert drop_path(x, 0.0, training=True) is x
    assert drop_path(x, 0.5, training=False) is x
    torch.manual_seed(0)
    y = drop_path(x, 0.5, training=True)
    kept = (y.flatten(1) != 0).any(1)
    assert 0 < kept.sum() < 64  # whole examples dropped, the rest scaled by 1 / (1 - p)
    assert torch.allclose(y[kept], 2 * x[kept]) and torch.all(y[~kept] == 0)


def test_drop_path_never_drops_identity_ops():
    identity = tuple(("skip_connect", i) for node in range(4) for i in (0, 1))
    cell = DiscreteCell(identity, (2, 3, 4, 5), 8, 8, 8, reduction=False, reduction_prev=False)
    assert all(isinstance(op, Identity) for op in cell.ops) and not any(cell.droppable)
    s0, s1 = torch.randn(16, 8, 4, 4), torch.randn(16, 8, 4, 4)
    cell.train()
    cell.drop_prob = 0.0
    ref = cell(s0, s1)
    cell.drop_prob = 0.9
    for seed in range(3):
        torch.manual_seed(seed)
        assert torch.equal(cell(s0, s1), ref)
    # ...while parametric ops, and the stride-2 skip (FactorizedReduce), are dropped
    mixed = (("sep_conv_3x3", 0), ("skip_connect", 1)) * 4
    conv_cell = DiscreteCell(mixed, (2, 3, 4, 5), 8, 8, 8, reduction=False, reduction_prev=False)
    assert conv_cell.droppable == [True, False] * 4
    conv_cell.train()
    conv_cell.drop_prob = 0.9
    torch.manual_seed(0)
    a = conv_cell(s0, s1)
    conv_cell.drop_prob = 0.0
    assert not torch.equal(a, conv_cell(s0, s1))
    red = DiscreteCell(mixed, (2, 3, 4, 5), 8, 8, 8, reduction=True, reduction_prev=False)
    assert isinstance(red.ops[1], FactorizedReduce) and red.droppable[1]
    # the whole network: p = 0 in training and any p in eval use no randomness at all
    net = DiscreteNetwork(Genotype.from_dict(DARTS_V2), 8, 3, 10, 1, drop_path=0.0)
    x = torch.randn(8, 1, 8, 8)
    net.eval()
    torch.manual_seed(1)
    ev = net(x)[0]
    net.drop_path_prob = 0.5
    torch.manual_seed(2)
    assert torch.equal(net(x)[0], ev)


def test_auxiliary_head_is_used_in_training_only():
    net = DiscreteNetwork(Genotype.from_dict(DARTS_V2), 8, 6, 10, 3, auxiliary=True)
    assert net.aux_index == 4  # the second reduction cell's output: 2/3 depth
    calls = []
    net.auxiliary_head.register_forward_hook(lambda *a: calls.append(1))
    x, y = torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))
    net.train()
    logits, aux = net(x)
    assert aux is not None and aux.shape == (4, 10) and len(calls) == 1
    (nn.functional.cross_entropy(logits, y) + 0.4 * nn.functional.cross_entropy(aux, y)).backward()
    assert all(p.grad is not None for p in net.auxiliary_head.parameters())
    net.eval()
    with torch.no_grad():
        logits_eval, aux_eval = net(x)
    assert aux_eval is None and len(calls) == 1  # not even computed in eval mode
    assert logits_eval.shape == (4, 10)
    # count_macs runs in eval mode, so it never includes the head
    plain = DiscreteNetwork(Genotype.from_dict(DARTS_V2), 8, 6, 10, 3, auxiliary=False)
    plain.train()
    assert plain(x)[1] is None
    assert count_macs(net, (3, 32, 32)) == count_macs(plain, (3, 32, 32))
    # the head fits any map size: DARTS's pool on 8x8, an adaptive pool elsewhere
    head = AuxiliaryHead(16, 10)
    for side in (2, 7, 8, 16):
        assert head(torch.randn(2, 16, side, side)).shape == (2, 10)


def test_no_auxiliary_when_weight_is_zero(tmp_path):
    out = evaluate(genotype=json.dumps(DARTS_V2), dataset="digits", epochs=1,
                   max_steps_per_epoch=1, auxiliary=0.0, drop_path=0.0, out=str(tmp_path), **TINY)
    doc = read_evaluation(out)
    assert doc["params"] == doc["params_with_auxiliary"]
    assert "train_aux_loss" not in doc["curve"][0]


# ------------------------------------------------------------------- defaults and inputs

def test_defaults_follow_the_papers():
    c10 = EvalConfig(dataset="cifar10").resolved("darts-cell", "darts")
    assert (c10.epochs, c10.layers, c10.channels, c10.batch_size, c10.cutout, c10.drop_path,
            c10.auxiliary, c10.optimizer, c10.lr, c10.lr_min, c10.momentum, c10.weight_decay,
            c10.grad_clip) == (600, 20, 36, 96, 16, 0.2, 0.4, "sgd", 0.025, 0.0, 0.9, 3e-4, 5.0)
    for ds in ("cifar100", "svhn"):
        small = EvalConfig(dataset=ds).resolved("darts-cell", "s2")
        assert (small.layers, small.channels, small.epochs) == (8, 16, 600)
        assert EvalConfig(dataset=ds).resolved("darts-cell", "darts").layers == 20
    assert EvalConfig(dataset="cifar10").resolved("darts-cell", "s3").layers == 20
    assert EvalConfig(dataset="cifar10", layers=14).resolved().layers == 14  # flags win
    nb = EvalConfig(dataset="cifar10").resolved("nb101-cell")
    assert (nb.epochs, nb.layers, nb.channels, nb.optimizer, nb.auxiliary) == \
        (108, 9, 128, "rmsprop", 0.0)
    with pytest.raises(NasbenchEvalError, match="drop-path"):
        EvalConfig(dataset="cifar10", drop_path=0.2).resolved("nb101-cell")


def test_genotype_json_forms_and_errors(tmp_path):
    g = Genotype.from_dict(DARTS_V2)
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"epoch": 3, "genotype": DARTS_V2}))  # a genotypes.jsonl line
    assert genotype_from_json(json.dumps(DARTS_V2)) == g
    assert genotype_from_json(str(path)) == g
    assert genotype_from_json(json.dumps(DARTS_V2), space="darts") == g
    nb = genotype_from_json({"family": "nb101-cell", "nb101": {
        "matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]}})
    assert family_of(nb) == "nb101-cell" and nb.to_model_spec().ops == ("input", "output")
    with pytest.raises(NasbenchEvalError, match="not valid JSON"):
        genotype_from_json("{nope")
    with pytest.raises(NasbenchEvalError, match="unrecognised"):
        genotype_from_json('{"cells": 3}')
    bad = {**DARTS_V2, "normal": [["sep_conv_3x3", 0], ["sep_conv_3x3", 3]] + DARTS_V2["normal"][2:]}
    with pytest.raises(NasbenchEvalError, match="reads state 3"):
        evaluate(genotype=bad, dataset="digits", out=str(tmp_path), **TINY)


def test_nb101_cell_trains_through_nasbench_pytorch(tmp_path):
    spec = {"matrix": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
            "ops": ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]}
    out = evaluate(genotype=spec, dataset="digits", epochs=1, max_steps_per_epoch=2,
                   batch_size=32, layers=3, channels=8, device="cpu", progress=False,
                   out=str(tmp_path))
    doc = read_evaluation(out)
    assert doc["family"] == "nb101-cell" and doc["status"] == "finished"
    assert doc["settings"]["optimizer"] == "rmsprop" and doc["params"] > 0


def test_cli_evaluate_genotype(tmp_path):
    runner = CliRunner()
    res = runner.invoke(evaluate_cmd, ["--genotype", json.dumps(DARTS_V2), "--dataset", "digits",
                                       "--epochs", "1", "--layers", "3", "--channels", "8",
                                       "--max-steps-per-epoch", "1", "--device", "cpu",
                                       "--out", str(tmp_path), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "final test error" in res.output and "params" in res.output
    assert len(list(tmp_path.glob("eval-digits-seed0-*/evaluation.json"))) == 1
    res = runner.invoke(evaluate_cmd, ["--dataset", "digits"])
    assert res.exit_code != 0 and "exactly one" in res.output
    res = runner.invoke(evaluate_cmd, ["--genotype", "{bad"])
    assert res.exit_code != 0 and "not valid JSON" in res.output
