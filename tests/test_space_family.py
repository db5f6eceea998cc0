"""The space-family seam: a family defined in one folder outside the package (the toy
``chain-cell`` family of tests/fixtures/families/chain/) runs ``run`` and ``evaluate`` with
no file of the package edited; the shipped families through the same interface."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import nasbench_eval
from nasbench_eval.errors import NasbenchEvalError
from nasbench_eval.evaluation import EvalConfig, evaluate, genotype_from_json, read_evaluation
from nasbench_eval.oracles import resolve_auto_oracle
from nasbench_eval.oracles.train import TrainOracle
from nasbench_eval import registry as plugin_registry
from nasbench_eval.registry import PLUGINS_ENV
from nasbench_eval.spaces import FAMILIES, SpaceFamily, family_of, get_family, load_space
from nasbench_eval.spaces.base import GENERIC_EVALUATION, GenotypeError
from nasbench_eval.spaces.supernet import SupernetSeamError

CHAIN = Path(__file__).parent / "fixtures" / "families" / "chain"


@pytest.fixture
def chain_family(monkeypatch):
    """The plugin family, registered for this test only (later tests see the shipped ones)."""
    monkeypatch.delenv(PLUGINS_ENV, raising=False)
    FAMILIES.names()  # the shipped families, imported before the registry is copied
    monkeypatch.setattr(FAMILIES, "_entries", dict(FAMILIES._entries))
    monkeypatch.setattr(plugin_registry, "_loaded_plugins", set(plugin_registry._loaded_plugins))
    monkeypatch.setenv(PLUGINS_ENV, str(CHAIN))
    assert "chain-cell" in FAMILIES  # loaded from the plugin folder on lookup
    return get_family("chain-cell")


def test_builtin_families_are_registered_with_the_declared_interface():
    assert FAMILIES.names() == ["darts-cell", "nb101-cell", "nb201-cell"]
    for name in ("darts-cell", "nb101-cell"):
        assert isinstance(get_family(name), SpaceFamily)
    assert family_of(load_space("s3")).name == "darts-cell"
    assert family_of(load_space("nb1shot1-2")).maps_to_nasbench101
    assert not family_of(load_space("s3")).maps_to_nasbench101


def test_a_family_from_a_plugin_folder_searches_and_evaluates(chain_family, tmp_path):
    space = load_space(CHAIN / "chain.toml")
    assert space.family == "chain-cell" and family_of(space) is chain_family
    run_dir = nasbench_eval.run(method="darts", space=str(CHAIN / "chain.toml"),
                                dataset="digits", epochs=2, layers=2, channels=4, batch_size=16,
                                max_steps_per_epoch=2, bn_recalibration_batches=1,
                                progress=False, out=str(tmp_path / "runs"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["oracle"] == "oneshot"
    genotype = space.genotype_from_dict(summary["final_genotype"])
    assert len(genotype.ops) == 2
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert "param_free_normal" in header  # the family's per-epoch metrics

    out = evaluate(run_dir, epochs=1, device="cpu", progress=False)
    doc = read_evaluation(out)
    assert doc["status"] == "finished" and doc["family"] == "chain-cell"
    assert doc["settings"]["layers"] == 2 and doc["settings"]["channels"] == 8  # its defaults
    assert 0.0 <= doc["final_test_error"] <= 1.0

    # its genotype JSON is recognised without --space; the table oracles do not apply
    assert genotype_from_json(json.dumps(genotype.to_dict())) == genotype
    assert not TrainOracle.available(space, None)
    assert resolve_auto_oracle(space, None) == "oneshot"


def test_the_toy_supernet_honours_the_seam(chain_family):
    space = load_space(CHAIN / "chain.toml")
    net = space.build_supernet(4, 1, 10, 1)
    assert len(list(net.candidates())) == 2 * 3 and net.classifier.out_features == 10
    x = torch.randn(2, 1, 8, 8)
    w = {"chain": torch.softmax(torch.randn(2, 3), -1)}
    calls = []
    net.set_edge_forward(lambda edge, h, row: calls.append(edge.edge) or edge.default(h, row))
    torch.testing.assert_close(net(x, w), (net.set_edge_forward(None), net(x, w))[1])
    assert calls == [0, 1]


def test_evaluation_defaults_come_from_the_family():
    darts, nb101 = get_family("darts-cell"), get_family("nb101-cell")
    assert darts.evaluation_defaults("cifar10", "darts")["layers"] == 20
    assert darts.evaluation_defaults("cifar100", "s2")["layers"] == 8
    # a dataset the family has no row for: the generic size with the family's training
    new = darts.evaluation_defaults("some-new-dataset", None)
    assert new["layers"] == GENERIC_EVALUATION["layers"] and new["auxiliary"] == 0.4
    assert nb101.evaluation_defaults("digits", None)["optimizer"] == "rmsprop"
    assert EvalConfig(dataset="digits").resolved(darts, "s3").cutout == 4


def test_genotype_json_errors_name_the_missing_field():
    with pytest.raises(GenotypeError, match="missing fields? 'reduce'"):
        genotype_from_json({"normal": [["skip_connect", 0], ["skip_connect", 1]]})
    with pytest.raises(GenotypeError, match="missing fields? 'reduce'"):
        genotype_from_json({"normal": [], "normal_concat": [2], "reduce_concat": [2]},
                           space="s3")
    with pytest.raises(GenotypeError, match="'normal' must be a list"):
        genotype_from_json({"normal": [3], "reduce": []})
    with pytest.raises(NasbenchEvalError, match="unrecognised"):
        genotype_from_json({"cells": 3})


def test_nb101_supernet_seam():
    space = load_space("nb1shot1-2")
    net = space.build_supernet(4, 3, 10, 1)
    cands = list(net.candidates())
    assert len(cands) == 3 * space.blocks * len(space.ops)
    assert {c.cell_type for c in cands} == {"ops"}
    assert [c.op for c in cands[:len(space.ops)]] == list(space.ops)
    assert net.classifier.out_features == 10
    net.set_drop_path(0.0)
    net.set_edge_forward(None)
    with pytest.raises(SupernetSeamError, match="drop-path"):
        net.set_drop_path(0.1)
    # the mixed op of every choice block is an edge: GDAS and PC-DARTS reach it (tests in
    # test_gdas.py, test_pc_darts.py); every row is alone in its edge-normalisation group
    net.set_edge_forward(lambda edge, x, w: edge.default(x, w))
    assert net.node_edges() == {k: tuple((r,) for r in range(s[0]))
                                for k, s in space.arch_shapes().items()}


def test_the_plugin_family_is_gone_after_its_test():
    assert "chain-cell" not in FAMILIES


def test_the_kept_cell_counts_are_what_the_enumeration_computes():
    """``list spaces`` reads the bundled spaces' counts from each family's ``ENUMERATED``
    (enumerating nb1shot1-3 takes seconds): every kept entry is enumerated again here, and
    every bundled space of those families has one, so a changed spec or counting rule fails."""
    from nasbench_eval.spaces import builtin_spaces
    from nasbench_eval.spaces.nb101 import space as nb101
    from nasbench_eval.spaces.nb201 import genotype as nb201

    for key, kept in nb101.ENUMERATED.items():
        assert nb101._count_cells.__wrapped__(key) == kept, key
    for (ops, nodes), kept in nb201.ENUMERATED.items():
        assert nb201.enumerate_cells.__wrapped__(ops, nodes) == kept, (ops, nodes)
    spaces = [load_space(name) for name in builtin_spaces()]
    nb101_keys = {nb101._structure_key(s) for s in spaces if s.family == "nb101-cell"}
    nb201_keys = {(s.ops, s.nodes) for s in spaces if s.family == "nb201-cell"}
    assert nb101_keys == set(nb101.ENUMERATED) and nb201_keys == set(nb201.ENUMERATED)
