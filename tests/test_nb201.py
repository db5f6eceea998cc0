"""NAS-Bench-201 (family nb201-cell): genotype strings, derivation, isomorphism counts, the
supernet and its seam, the discrete network's parameter count, the table oracles."""
from __future__ import annotations

import pickle
from itertools import product

import pytest
import torch

from nasbench_eval import run
from nasbench_eval.config import RunConfig
from nasbench_eval.errors import NasbenchEvalError
from nasbench_eval.oracles import OracleContext
from nasbench_eval.spaces import get_family, load_space
from nasbench_eval.spaces.base import GenotypeError
from nasbench_eval.spaces.nb201.genotype import (NB201_OPS, Nb201Genotype, canonical_form,
                                                count_cells)
from nasbench_eval.spaces.nb201.network import Nb201Network
from nasbench_eval.spaces.nb201.ops import stage_sizes
from nasbench_eval.spaces.supernet import SupernetSeamError

ARCH1 = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
         "skip_connect~2|")
"""NATS-Bench index 1: 0.802426 M parameters on CIFAR-10 (NATS-Bench issues 18 and 36)."""
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"


@pytest.fixture(scope="module")
def space():
    return load_space("nb201")


# ============================================================================ genotypes

def test_arch_string_round_trip_every_cell():
    for ops in product(NB201_OPS, repeat=6):
        g = Nb201Genotype(ops)
        assert Nb201Genotype.from_arch_str(g.arch_str()) == g
        assert Nb201Genotype.from_dict(g.to_dict()) == g


def test_arch_string_layout():
    g = Nb201Genotype.from_arch_str(ARCH1)
    assert g.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect",
                     "nor_conv_3x3", "skip_connect")
    assert str(g) == ARCH1
    m = g.metrics()
    assert m["param_free_normal"] == 0.5 and m["skip_connections"] == 2 and m["none_edges"] == 0


@pytest.mark.parametrize("bad", ["", "|nor_conv_3x3~0|+|none~0|", "|conv~0|+|none~0|none~1|",
                                 "|none~1|+|none~0|none~1|", "|none0|"])
def test_bad_arch_strings_are_refused(bad):
    with pytest.raises(GenotypeError):
        Nb201Genotype.from_arch_str(bad)


def test_isomorphism_counts():
    c = count_cells(NB201_OPS, 4)
    assert c["cells"] == 15625
    assert c["distinct_benchmark"] == 6466  # NATS-Bench issue 43 (the authors' count)
    assert c["distinct"] == 4930
    assert c["zero"] == 341  # 3 ^ ... cells whose output is identically zero, enumerated


def test_functional_form_merges_what_it_should():
    f = lambda s: canonical_form(Nb201Genotype.from_arch_str(s).ops, 4)  # noqa: E731
    # a skip chain is the input; where the skip sits on a path does not matter
    assert f(ALL_SKIP.replace("skip_connect~0|+", "none~0|+")) != f(ALL_SKIP)
    assert f("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|") == \
        f("|none~0|+|none~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    # cells with no path to the output compute zero
    assert f("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|") == "0"


# ============================================================================ space

def test_derivation_is_argmax_with_none(space):
    w = torch.full((6, 5), -1.0)
    for e, k in enumerate([0, 1, 2, 3, 4, 0]):
        w[e, k] = 1.0
    g = space.derive({"cell": w})
    assert g.ops == ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3",
                     "none")
    tie = torch.zeros(6, 5)
    assert space.derive({"cell": tie}).ops == ("none",) * 6  # ties: the lower column
    for ops in [("nor_conv_3x3",) * 6, Nb201Genotype.from_arch_str(BEST).ops]:
        g = Nb201Genotype(ops)
        assert space.derive(space.discrete_weights(g)) == g


def test_list_spaces_lines(space):
    text = "\n".join(space.describe())
    assert "15,625" in text and "6,466 (matches)" in text and "4,930" in text


def test_stage_sizes():
    assert stage_sizes(15) == (5, 5, 5) and stage_sizes(8) == (3, 3, 2)
    with pytest.raises(NasbenchEvalError):
        stage_sizes(2)


# ============================================================================ networks

def test_supernet_shapes_and_seam(space):
    net = space.build_supernet(8, 3, 10, 1)
    w = {"cell": torch.softmax(torch.randn(6, 5), -1)}
    assert net(torch.randn(2, 1, 8, 8), w).shape == (2, 10)
    assert net.arch_shapes() == {"cell": (6, 5)}
    cands = list(net.candidates())
    assert len(cands) == 3 * 6 * 4  # none has no module
    assert {c.op for c in cands} == set(NB201_OPS) - {"none"}
    # search BN has no affine parameters; the residual blocks do
    cell_bns = [m for m in net.layers[0].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert cell_bns and all(not bn.affine for bn in cell_bns)
    # edge forward: the default reproduces the mixture exactly
    x = torch.randn(2, 1, 8, 8)
    net.eval()
    ref = net(x, w)
    net.set_edge_forward(lambda call, x_, w_: call.default(x_, w_))
    assert torch.equal(net(x, w), ref)
    net.set_edge_forward(None)
    net.set_drop_path(0.0)
    with pytest.raises(SupernetSeamError):
        net.set_drop_path(0.2, "cell")
    net.set_fused_edges(True)  # the fused cells: the same up to rounding (test_nb201_fused.py)
    torch.testing.assert_close(net(x, w), ref, rtol=1e-5, atol=1e-6)
    net.set_fused_edges(False)
    assert torch.equal(net(x, w), ref)


def test_oneshot_weights_compute_the_discrete_cell(space):
    """With one-hot weights the supernet's cell is the genotype's (same modules)."""
    torch.manual_seed(0)
    net = space.build_supernet(4, 3, 10, 3).eval()
    g = Nb201Genotype.from_arch_str(ARCH1)
    w = space.discrete_weights(g)
    cell = net.layers[0]
    x = torch.randn(2, 4, 8, 8)
    states = [x]
    e = 0
    for t in range(1, 4):
        total = 0
        for s in range(t):
            op = g.ops[e]
            if op != "none":
                edge = cell.edges[e]
                total = total + edge.ops[edge.columns.index(NB201_OPS.index(op))](states[s])
            e += 1
        states.append(total)
    assert torch.allclose(cell(x, w["cell"], 0.0, "op"), states[-1])


def test_parameter_count_matches_the_benchmark():
    """0.802426 M parameters for NATS-Bench index 1 on CIFAR-10 at N = 5, C = 16 (NATS-Bench
    issues 18 and 36 print it from the official table)."""
    net = Nb201Network(Nb201Genotype.from_arch_str(ARCH1), 16, 15, 10, 3)
    assert sum(p.numel() for p in net.parameters()) == 802426
    logits, aux = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10) and aux is None


def test_evaluation_defaults():
    fam = get_family("nb201-cell")
    cifar = fam.evaluation_defaults("cifar10", "nb201")
    assert (cifar["epochs"], cifar["layers"], cifar["channels"], cifar["batch_size"],
            cifar["lr"], cifar["weight_decay"]) == (200, 15, 16, 256, 0.1, 5e-4)
    assert fam.evaluation_defaults("digits", "nb201")["layers"] == 6


# ============================================================================ table oracles

def build_nats_file(tmp_path, archs: dict[str, float]):
    """A tiny NATS-Bench topology file (``.pickle.pbz2``) in the official format, written
    with nats_bench's own classes: for each arch, 2 seeds on cifar10-valid, cifar10 and
    cifar100 at 12 and 200 epochs; accuracy = the given value (+ 1 for valid, + epochs/100)."""
    nb = pytest.importorskip("nats_bench")
    meta = list(archs)
    arch2infos = {}
    for idx, arch in enumerate(meta):
        per_hp = {}
        for epochs in (12, 200):
            res = nb.ArchResults(idx, arch)
            for dataset, sets in (("cifar10-valid", ("x-valid", "ori-test")),
                                  ("cifar10", ("ori-test",)),
                                  ("cifar100", ("x-valid", "x-test", "ori-test"))):
                for seed, delta in ((777, -0.5), (888, 0.5)):
                    acc = archs[arch] + epochs / 100 + delta
                    r = nb.ResultsCount(dataset, None, None, None, 0.802426, 113.95,
                                        {"arch_str": arch, "channel": 16, "num_cells": 5,
                                         "class_num": 10}, seed, epochs, None)
                    r.update_train_info({i: acc + 5 for i in range(epochs)}, None,
                                        {i: 0.1 for i in range(epochs)},
                                        {i: 1.0 for i in range(epochs)})
                    accs, losses, times = {}, {}, {}
                    for name in sets:
                        for i in range(epochs):
                            key = f"{name}@{i}"
                            accs[key] = acc + (1.0 if name == "x-valid" else 0.0)
                            losses[key], times[key] = 0.5, 0.1
                    r.update_eval(accs, losses, times)
                    res.update(dataset, seed, r)
            per_hp[str(epochs)] = res.state_dict()
        arch2infos[idx] = per_hp
    path = tmp_path / "NATS-tss-tiny.pickle"  # pickle_save appends ".pbz2"
    nb.pickle_save({"meta_archs": meta, "arch2infos": arch2infos,
                    "evaluated_indexes": set(range(len(meta)))}, str(path))
    return tmp_path / "NATS-tss-tiny.pickle.pbz2"


def test_nasbench201_oracle_on_a_file_in_the_official_format(tmp_path, space):
    from nasbench_eval.oracles.nasbench201 import NasBench201Oracle, query_arch

    path = build_nats_file(tmp_path, {ARCH1: 88.0, BEST: 94.0})
    import nats_bench

    api = nats_bench.create(str(path), "tss", fast_mode=False, verbose=False)  # the API loads it
    assert api.query_index_by_arch(BEST) == 1
    row = query_arch(BEST, str(path))
    assert row["index"] == 1
    assert row["acc_cifar10_test_200ep"] == pytest.approx(96.0)  # mean of the two seeds
    assert row["acc_cifar10-valid_valid_12ep"] == pytest.approx(95.12)
    assert row["acc_cifar100_test_12ep"] == pytest.approx(94.12)
    assert "acc_ImageNet16-120_test_200ep" not in row  # not in this file
    cfg = RunConfig(method="darts", space="nb201", oracle="nasbench201",
                    oracle_options={"path": str(path), "dataset": "cifar10-valid",
                                    "split": "valid", "epochs": 12})
    ctx = OracleContext(None, space, cfg, torch.device("cpu"), None, None)
    out = NasBench201Oracle().score(Nb201Genotype.from_arch_str(ARCH1), ctx)
    assert out["test_error"] == pytest.approx(1 - 89.12 / 100)
    assert out["protocol"] == "cifar10-valid/valid/12ep"
    bad = RunConfig(method="darts", space="nb201", oracle="nasbench201",
                    oracle_options={"path": str(path), "dataset": "cifar10", "split": "valid"})
    with pytest.raises(NasbenchEvalError, match="no 'valid' split"):
        NasBench201Oracle().score(Nb201Genotype.from_arch_str(ARCH1),
                                  OracleContext(None, space, bad, torch.device("cpu"), None, None))


class _Architecture:
    """Stands for the package's record class while a test table is written."""


def build_analog_file(path, entries: dict[tuple[int, ...], float], extra_global=None):
    """A small ``data.anb`` in the package's format: a pickle of {6-tuple: record with
    ``baseline_accuracy``} whose records' class is ``analognasbench.data.Architecture``
    (written under a stand-in module name, then renamed in the protocol-2 stream, so the
    package is not needed)."""
    import sys
    import types

    fake = types.ModuleType("nbe_fake_anb")
    fake.Architecture = _Architecture
    _Architecture.__module__, _Architecture.__qualname__ = "nbe_fake_anb", "Architecture"
    sys.modules["nbe_fake_anb"] = fake
    try:
        data: dict = {}
        for key, acc in entries.items():
            rec = _Architecture()
            rec.architecture, rec.baseline_accuracy = key, acc
            data[key] = rec
        if extra_global is not None:
            data["x"] = extra_global
        raw = pickle.dumps(data, protocol=2)
    finally:
        del sys.modules["nbe_fake_anb"]
    raw = raw.replace(b"cnbe_fake_anb\nArchitecture\n", b"canalognasbench.data\nArchitecture\n")
    path.write_bytes(raw)
    return path


def test_analog_table_reader(tmp_path, space):
    from nasbench_eval.oracles.nb201_analog import (Nb201AnalogOracle, cifar10_accuracy,
                                                   load_table, table_key)

    best_key = table_key(Nb201Genotype.from_arch_str(BEST).ops)
    assert best_key == (2, 2, 0, 2, 3, 2)  # edges 0-1, 0-2, 0-3, 1-2, 1-3, 2-3
    path = build_analog_file(tmp_path / "data.anb", {best_key: 94.07, (0,) * 6: 60.8})
    assert cifar10_accuracy(BEST, str(path)) == 94.07
    assert cifar10_accuracy(ALL_SKIP, str(path)) == 60.8
    with pytest.raises(NasbenchEvalError, match="not in"):
        cifar10_accuracy(ARCH1, str(path))
    cfg = RunConfig(method="darts", space="nb201", oracle="nb201-analog",
                    oracle_options={"path": str(path)})
    ctx = OracleContext(None, space, cfg, torch.device("cpu"), None, None)
    out = Nb201AnalogOracle().score(Nb201Genotype.from_arch_str(BEST), ctx)
    assert out["test_error"] == pytest.approx(1 - 0.9407) and out["cifar10_test_acc"] == 94.07
    # the restricted unpickler refuses any other global
    evil = build_analog_file(tmp_path / "evil.anb", {best_key: 1.0}, extra_global=print)
    load_table.cache_clear()
    with pytest.raises(NasbenchEvalError, match="not allowed"):
        load_table(str(evil))


def test_search_runs_on_nb201(tmp_path):
    cfg = RunConfig(method="darts", space="nb201", dataset="digits", seed=0, epochs=2, layers=3,
                    channels=4, batch_size=32, max_steps_per_epoch=2, oracle="oneshot",
                    out=str(tmp_path), bn_recalibration_batches=1, progress=False)
    run_dir = run(cfg)
    import csv

    rows = list(csv.DictReader(open(run_dir / "metrics.csv")))
    assert len(rows) == 2
    for key in ("param_free_normal", "skip_connections", "none_edges", "nb201_arch"):
        assert key in rows[0]
    Nb201Genotype.from_arch_str(rows[-1]["nb201_arch"])


@pytest.mark.parametrize("method", ["darts-2nd", "sdarts-rs", "sdarts-adv", "maxw", "random-ws",
                                    "darts-es", "rdarts-dp", "rdarts-l2"])
def test_every_applicable_method_runs_on_nb201(tmp_path, method):
    cfg = RunConfig(method=method, space="nb201", dataset="digits", seed=0, epochs=1, layers=3,
                    channels=4, batch_size=32, max_steps_per_epoch=2, oracle="oneshot",
                    out=str(tmp_path), bn_recalibration_batches=1, progress=False)
    run(cfg)


def test_msr_refuses_nb201(tmp_path):
    cfg = RunConfig(method="msr", space="nb201", dataset="digits", epochs=1, layers=3,
                    channels=4, max_steps_per_epoch=1, out=str(tmp_path), progress=False)
    with pytest.raises(NasbenchEvalError, match="darts-cell"):
        run(cfg)


def test_train_nb201_oracle(tmp_path):
    cfg = RunConfig(method="darts", space="nb201", dataset="digits", seed=0, epochs=1, layers=3,
                    channels=4, batch_size=32, max_steps_per_epoch=2, oracle="train-nb201",
                    oracle_options={"train_epochs": 1, "channels": 4},
                    out=str(tmp_path), progress=False)
    import csv

    rows = list(csv.DictReader(open(run(cfg) / "metrics.csv")))
    assert 0.0 <= float(rows[0]["anytime_test_error"]) <= 1.0
    assert (tmp_path / "oracle-cache" / "train-nb201.json").is_file()


def test_query_nb201_from_the_official_format(tmp_path):
    from click.testing import CliRunner

    from nasbench_eval.cli import main

    path = build_nats_file(tmp_path, {BEST: 94.0})
    res = CliRunner().invoke(main, ["query", "--space", "nb201", "--genotype", BEST,
                                    "--table", str(path)])
    assert res.exit_code == 0, res.output
    assert "cifar10-valid   valid  200ep  97.00" in res.output
