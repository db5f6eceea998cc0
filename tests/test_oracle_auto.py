"""--oracle auto: the NAS-Bench-101 table on 1Shot1 spaces once its cache exists, end to end."""
from __future__ import annotations

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from nasbench_eval import run
from nasbench_eval.config import RunConfig
from nasbench_eval.nb101.table import (import_nasbench101, resolve_cache_path, synthetic_metrics,
                                       write_nasbench101)
from nasbench_eval.resolve import resolve_config
from nasbench_eval.spaces import load_space


def test_auto_picks_the_table_only_where_it_applies(tmp_path):
    cfg = RunConfig(space="nb1shot1-2", data_root=str(tmp_path))
    assert resolve_config(cfg).oracle == "oneshot"
    assert resolve_config(RunConfig(space="s3", oracle="train")).oracle == "train"  # explicit stays


def test_search_scores_with_the_table_once_imported(tmp_path):
    base = RunConfig(method="darts", space="nb1shot1-1", dataset="digits", epochs=2, layers=3,
                     channels=4, batch_size=16, max_steps_per_epoch=2,
                     bn_recalibration_batches=1, progress=False, data_root=str(tmp_path / "data"))
    first = run(replace(base, out=str(tmp_path / "a")))  # oneshot: no table yet
    assert json.loads((first / "summary.json").read_text())["oracle"] == "oneshot"
    space = load_space("nb1shot1-1")
    lines = (first / "genotypes.jsonl").read_text().splitlines()
    specs = {}
    for line in lines:
        g = space.genotype_from_dict(json.loads(line)["genotype"])
        specs[g.hash()] = g.to_model_spec().to_dict()
    rng = np.random.default_rng(0)
    planted = {h: [synthetic_metrics(rng, 108, 1000) for _ in range(3)] for h in specs}
    tfrecord = tmp_path / "table.tfrecord"
    write_nasbench101(tfrecord, [(h, specs[h], {108: planted[h]}) for h in specs])
    import_nasbench101(tfrecord, cache=resolve_cache_path(None, base.data_root), progress=False)

    cfg = replace(base, out=str(tmp_path / "b"))
    assert resolve_config(cfg).oracle == "nasbench101"
    second = run(cfg)
    config = json.loads((second / "config.json").read_text())
    assert config["config"]["oracle"] == "nasbench101"
    rows = list(csv.DictReader(open(second / "metrics.csv")))
    for row in rows:  # the same search (the oracle does not touch it), scored by the table
        expected = 1 - np.mean([m.evaluation_data[2].test_accuracy for m in planted[row["nb101_hash"]]])
        assert float(row["anytime_test_error"]) == pytest.approx(expected, abs=1e-6)
    assert [r["nb101_hash"] for r in rows] == [
        space.genotype_from_dict(json.loads(line)["genotype"]).hash() for line in lines]
