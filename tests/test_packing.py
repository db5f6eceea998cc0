"""Seed packing (issue 20): K seeds packed into one supernet compute what K separate runs
compute. The defining test: float64, K = 3, 20 steps, alphas, weights and losses within 1e-10."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from nasbench_eval.config import RunConfig
from nasbench_eval.errors import NasbenchEvalError
from nasbench_eval.methods import GradientMethod
from nasbench_eval.packing.net import PackedSupernet, PackingError
from nasbench_eval.packing.step import packed_step_for
from nasbench_eval.runner import build_search


def _searches(tmp_path, method: str, seeds=(0, 1, 2), **kw):
    base = RunConfig(**{**dict(method=method, space="s3", dataset="digits", epochs=3, layers=3,
                               channels=4, batch_size=8, out=str(tmp_path / "r"),
                               progress=False, device="cpu"), **kw})
    out = []
    for s in seeds:
        search = build_search(replace(base, seed=s))
        search.supernet.double()
        alphas = search.method.alphas if isinstance(search.method, GradientMethod) else {}
        for a in alphas.values():
            a.data = a.data.double()
        out.append(search)
    return out


def _batches(search, seed: int, n: int):
    """``n`` (train, val) batch pairs of one seed, drawn as its runner would (epoch 0 order,
    continuing into later epochs when the split is short)."""
    out, epoch = [], 0
    while len(out) < n:
        g_t = torch.Generator().manual_seed(1000 * seed + epoch)
        g_v = torch.Generator().manual_seed(1000 * seed + epoch + 500)
        for tb, vb in zip(search.train.epoch(g_t), search.val.epoch(g_v)):
            out.append(((tb[0].double(), tb[1]), (vb[0].double(), vb[1])))
            if len(out) == n:
                break
        epoch += 1
    return out


def _state(search):
    m = search.method
    return ({k: v.detach().clone() for k, v in m.alphas.items()},
            {k: v.detach().clone() for k, v in search.supernet.state_dict().items()})


@pytest.mark.parametrize("method,clip", [("darts", 0.05), ("maxw", 0.05),
                                         ("sdarts-rs", 0.05), ("sdarts-adv", 0.05),
                                         ("darts-2nd", 0.05), ("rdarts-l2", 5.0)])
def test_packed_equals_separate_float64(tmp_path, method, clip):
    """grad_clip 0.05 clips every step (each seed by its own norm); 5.0 rarely does (the
    unclipped step of every method is the same ``clip_per_seed``, run here by rdarts-l2).
    The smallest supernet with both cell types (3 cells: reductions at 1 and 2), 2 channels
    and batches of 2: packing is per slice, so its size changes nothing of what is compared,
    and float64 convolutions on the CPU are slow."""
    steps, seeds = 20, (0, 1, 2)
    small = dict(layers=3, channels=2, batch_size=2, grad_clip=clip)
    sep = _searches(tmp_path, method, seeds, **small)
    packed = _searches(tmp_path, method, seeds, **small)
    data = [_batches(s, seed, steps) for s, seed in zip(sep, seeds)]
    sep_losses = []
    for seed, s, batches in zip(seeds, sep, data):
        torch.manual_seed(77 + seed)  # the global RNG of this seed's run (sdarts-rs noise)
        losses = []
        for tb, vb in batches:
            out = s.method.step(tb, vb)
            losses.append((float(out["train_loss"]) / float(out["train_count"]),
                           float(out["alpha_val_loss"]) / float(out["train_count"])))
        sep_losses.append(losses)
    net = PackedSupernet([s.supernet for s in packed])
    step = packed_step_for([s.method for s in packed], net)
    gens = [torch.Generator().manual_seed(77 + seed) for seed in seeds]
    for i in range(steps):
        out = step.step([d[i][0] for d in data], [d[i][1] for d in data], gens)
        for k in range(len(seeds)):
            n = float(out["train_count"][k])
            assert abs(float(out["train_loss"][k]) / n - sep_losses[k][i][0]) < 1e-10
            assert abs(float(out["alpha_val_loss"][k]) / n - sep_losses[k][i][1]) < 1e-10
    step.unpack_into()
    for s_sep, s_pk in zip(sep, packed):
        a1, w1 = _state(s_sep)
        a2, w2 = _state(s_pk)
        for key in a1:
            assert (a1[key] - a2[key]).abs().max() < 1e-10, key
        for key in w1:
            assert (w1[key].double() - w2[key].double()).abs().max() < 1e-10, key
        # optimizer states went back per seed: the next separate step agrees too
        st1, st2 = s_sep.method.state_dict(), s_pk.method.state_dict()
        for p1, p2 in zip(st1["w_opt"]["state"].values(), st2["w_opt"]["state"].values()):
            assert (p1["momentum_buffer"] - p2["momentum_buffer"]).abs().max() < 1e-10
        for p1, p2 in zip(st1["alpha_opt"]["state"].values(),
                          st2["alpha_opt"]["state"].values()):
            assert float(p1["step"]) == float(p2["step"]) == steps
            assert (p1["exp_avg_sq"] - p2["exp_avg_sq"]).abs().max() < 1e-10


def test_refused_methods_name_the_reason(tmp_path):
    searches = _searches(tmp_path, "random-ws", seeds=(0, 1))
    with pytest.raises(PackingError, match="random-ws.*path"):
        packed_step_for([s.method for s in searches],
                        PackedSupernet([s.supernet for s in searches]))
    searches = _searches(tmp_path, "rdarts-dp", seeds=(0, 1), epochs=3)
    with pytest.raises(PackingError, match="drop-path"):
        for s in searches:
            s.method.end_epoch(0)  # the ramp turns drop-path on after the first epoch
        PackedSupernet([s.supernet for s in searches])


def test_a_diverging_seed_leaves_the_others_alone(tmp_path):
    """NaN weights in seed 1 of a pack: seeds 0 and 2 still compute their separate runs."""
    seeds = (0, 1, 2)
    sep = _searches(tmp_path, "darts", seeds)
    packed = _searches(tmp_path, "darts", seeds)
    with torch.no_grad():
        next(packed[1].supernet.parameters()).fill_(float("nan"))
    data = [_batches(s, seed, 3) for s, seed in zip(sep, seeds)]
    for k in (0, 2):
        for tb, vb in data[k]:
            sep[k].method.step(tb, vb)
    step = packed_step_for([s.method for s in packed], PackedSupernet([s.supernet for s in packed]))
    for i in range(3):
        out = step.step([d[i][0] for d in data], [d[i][1] for d in data])
    assert torch.isnan(out["train_loss"][1])
    step.unpack_into()
    for k in (0, 2):
        for key in sep[k].method.alphas:
            assert (sep[k].method.alphas[key] - packed[k].method.alphas[key]).abs().max() < 1e-10


def test_parse_seeds():
    from nasbench_eval.errors import NasbenchEvalError
    from nasbench_eval.packing.runner import parse_seeds

    assert parse_seeds("0-3,8") == [0, 1, 2, 3, 8]
    assert parse_seeds("5") == [5] and parse_seeds("2,2,1") == [2, 1]
    for bad in ("3-1", "a", "1-"):
        with pytest.raises(NasbenchEvalError, match="--seeds"):
            parse_seeds(bad)


def _cfg(tmp_path, **kw):
    return RunConfig(**{**dict(method="darts", space="s3", dataset="digits", epochs=2, layers=3,
                               channels=4, batch_size=32, max_steps_per_epoch=3,
                               out=str(tmp_path / "results"), bn_recalibration_batches=2,
                               progress=False, device="cpu"), **kw})


def _record(run_dir):
    import csv
    import json

    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    for r in rows:
        for k in ("epoch_time_s", "wall_time_s", "oracle_time_s", "oracle_train_time_s",
                  "oracle_cached"):
            r.pop(k, None)
    return rows, (run_dir / "genotypes.jsonl").read_text(), json.loads(
        (run_dir / "summary.json").read_text())["status"]


def test_run_seeds_writes_ordinary_runs_and_resumes(tmp_path, monkeypatch, request):
    # one torch thread: the resumed group packs 2 seeds where the uninterrupted one packed 3,
    # and with 2+ threads oneDNN's float32 reductions depend on the packed width, so the two
    # differ at rounding level (measured at 2 threads; a known limit, docs/speed.md)
    import json

    set_threads = torch.set_num_threads
    request.addfinalizer(lambda threads=torch.get_num_threads(): set_threads(threads))
    set_threads(1)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # runs keep the one thread

    from nasbench_eval import runner
    from nasbench_eval.packing.runner import run_seeds

    cfg = _cfg(tmp_path)
    dirs = run_seeds(cfg, [0, 1, 2])
    assert [d.name for d in dirs] == [runner.resolve_config(replace(cfg, seed=s)).run_id()
                                      for s in (0, 1, 2)]
    for d in dirs:
        doc = json.loads((d / "config.json").read_text())
        assert doc["execution"]["packed_seeds"] == [0, 1, 2]
        assert _record(d)[2] == "finished" and len(_record(d)[0]) == 2
    # interrupted after seed 0 recorded epoch 1 (the last): the resume levels the group
    cfg2 = _cfg(tmp_path, out=str(tmp_path / "again"))
    real = runner._run_epoch
    calls = {"n": 0}

    def flaky(search, *a, **kw):
        calls["n"] += 1
        if calls["n"] == 5:  # epoch 1, seed 1
            raise KeyboardInterrupt
        return real(search, *a, **kw)

    monkeypatch.setattr(runner, "_run_epoch", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_seeds(cfg2, [0, 1, 2])
    monkeypatch.setattr(runner, "_run_epoch", real)
    again = [tmp_path / "again" / d.name for d in dirs]
    # seed 0 finished before the interruption and stays finished; the rerun skips it
    assert [_record(d)[2] for d in again] == ["finished", "interrupted", "interrupted"]
    run_seeds(cfg2, [0, 1, 2], resume=True)
    for d, e in zip(dirs, again):
        assert _record(d) == _record(e)


def test_run_seeds_on_workers_equals_one_process(tmp_path, monkeypatch, request):
    # --workers 2: seeds 0-3 as two packs of 2 in two single-thread worker processes; at
    # one thread a packed seed computes what it computes in a pack of 4 (see above), so the
    # records equal those of one packed group in this process, on one thread
    import json

    set_threads = torch.set_num_threads
    request.addfinalizer(lambda threads=torch.get_num_threads(): set_threads(threads))
    set_threads(1)
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)
    from nasbench_eval.packing.runner import run_seeds

    here = run_seeds(_cfg(tmp_path), [0, 1, 2, 3])
    there = run_seeds(_cfg(tmp_path, out=str(tmp_path / "w")), [0, 1, 2, 3], workers=2)
    assert [d.name for d in there] == [d.name for d in here]
    for a, b in zip(here, there):
        assert _record(a) == _record(b)
    assert [json.loads((d / "config.json").read_text())["execution"]["packed_seeds"]
            for d in there] == [[0, 1], [0, 1], [2, 3], [2, 3]]
    # a plain rerun refuses to overwrite, before any worker starts; --resume skips them
    with pytest.raises(NasbenchEvalError, match="already holds a run.*--resume"):
        run_seeds(_cfg(tmp_path, out=str(tmp_path / "w")), [0, 1, 2, 3], workers=2)
    assert run_seeds(_cfg(tmp_path, out=str(tmp_path / "w")), [0, 1, 2, 3], workers=2,
                     resume=True) == there


def test_workers_are_for_the_cpu(tmp_path, monkeypatch):
    from nasbench_eval import execution
    from nasbench_eval.packing.runner import run_seeds

    monkeypatch.setattr(execution, "resolve_device", lambda name: torch.device("cuda"))
    with pytest.raises(NasbenchEvalError, match="CPU worker processes.*--gpus N --pack K"):
        run_seeds(_cfg(tmp_path), [0, 1], workers=2)
    assert not (tmp_path / "results").exists()


def test_tracking_sinks_refuse_packing_before_any_work(tmp_path):
    # the packed runner does not feed --log-to sinks: refused, not silently skipped
    from nasbench_eval.packing.runner import run_seeds

    with pytest.raises(PackingError, match="tracking sinks.*tensorboard.*--pack 1"):
        run_seeds(_cfg(tmp_path, log_to=["tensorboard"]), [0, 1])
    assert not (tmp_path / "results").exists()


def test_refusals_before_any_work(tmp_path):
    from nasbench_eval.packing.runner import run_seeds

    with pytest.raises(PackingError, match="msr.*packable methods: darts, darts-2nd"):
        run_seeds(_cfg(tmp_path, method="msr"), [0, 1])
    with pytest.raises(PackingError, match="space 's4'.*noise"):
        run_seeds(_cfg(tmp_path, space="s4"), [0, 1])
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("memory_format", ["channels_last", "contiguous"])
def test_fused_packed_cells_equal_the_edge_loop(tmp_path, memory_format):
    """The source-fused packed cells (packing/fused.py) compute the packed per-edge loop's
    logits, gradients (weights and mixing weights) and BN buffers, in training and in
    evaluation, on the DARTS space (every candidate: pools, dilated convs, stride-2 skips
    on odd sizes)."""
    fmt = torch.channels_last if memory_format == "channels_last" else torch.contiguous_format
    searches = _searches(tmp_path, "darts", space="darts", dataset="synthetic", layers=3,
                         dataset_options={"n_train": 32, "n_test": 8, "shape": [3, 10, 10]})
    for s in searches:
        s.supernet.to(memory_format=fmt)
    nets = [PackedSupernet([s.supernet for s in searches], fused=f) for f in (True, False)]
    assert nets[0].memory_format == nets[1].memory_format == fmt
    k = len(searches)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3 * k, 10, 10, generator=gen, dtype=torch.float64)
    x = x.contiguous(memory_format=fmt)
    weights = {key: torch.rand((k, *shape), generator=gen, dtype=torch.float64)
               for key, shape in searches[0].supernet.arch_shapes().items()}
    outs = []
    for net in nets:
        w = {key: v.clone().requires_grad_() for key, v in weights.items()}
        logits = net(x, w)
        loss = (logits * torch.linspace(-1, 1, logits.numel(), dtype=torch.float64
                                        ).view_as(logits)).sum()
        grads = torch.autograd.grad(loss, net.weights() + list(w.values()))
        net.eval()
        evaluated = net(x, weights)
        outs.append((logits.detach(), grads, dict(net.buffers), evaluated))
    (l1, g1, b1, e1), (l2, g2, b2, e2) = outs
    assert (l1 - l2).abs().max() < 1e-12
    assert (e1 - e2).abs().max() < 1e-12
    for a, b in zip(g1, g2):
        assert a.shape == b.shape and (a - b).abs().max() < 1e-12
    assert b1.keys() == b2.keys()
    for key in b1:
        assert (b1[key].double() - b2[key].double()).abs().max() < 1e-12, key
