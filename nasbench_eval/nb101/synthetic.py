"""Synthetic NAS-Bench-101 files. The real file cannot be downloaded everywhere; tests and
the benchmark write files of the same format with these helpers (the encoder is
:mod:`.records`, the framing :mod:`.tfrecord`)."""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .records import ModelMetrics

__all__ = ["random_specs", "synthetic_metrics", "synthetic_nasbench101", "write_nasbench101"]


# same format with these helpers (the encoder is :mod:`.records`, framing :mod:`.tfrecord`).

def random_specs(n: int, seed: int = 0, max_vertices: int = 7, max_edges: int = 9
                 ) -> list[tuple[str, dict[str, Any]]]:
    """``n`` distinct valid NAS-Bench-101 cells as (module hash, pruned spec dict)."""
    from .graph import LABELS, ModelSpec

    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, Any]] = {}
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * n + 1000:
            raise RuntimeError(f"found only {len(out)} distinct cells")
        v = int(rng.integers(2, max_vertices + 1))
        m = np.triu(rng.random((v, v)) < 0.45, k=1).astype(np.int64)
        ops = ["input"] + [LABELS[int(k)] for k in rng.integers(0, 3, v - 2)] + ["output"]
        spec = ModelSpec(m, ops)
        if not spec.input_reaches_output():
            continue
        p = spec.pruned()
        if p.num_edges > max_edges or p.num_vertices > max_vertices:
            continue
        out.setdefault(p.hash(), p.to_dict())
    return list(out.items())


def synthetic_metrics(rng: np.random.Generator, budget: int, params: int,
                      checkpoint: bool = False) -> ModelMetrics:
    """A plausible ModelMetrics: 3 evaluation points (0, halfway, end); accuracies are
    float32 values widened to double, as in the real file; times are full doubles."""
    from .records import EvaluationData

    acc = rng.uniform(0.05, 0.95, size=(3, 3)).astype(np.float32).astype(np.float64)
    t_end = float(rng.uniform(100.0, 5000.0)) * budget / 108.0
    ev = []
    for k, epoch in enumerate((0.0, budget / 2.0, float(budget))):
        ev.append(EvaluationData(current_epoch=epoch, training_time=t_end * k / 2.0,
                                 train_accuracy=float(acc[k, 0]),
                                 validation_accuracy=float(acc[k, 1]),
                                 test_accuracy=float(acc[k, 2]),
                                 checkpoint_path=(f"gs://nasbench/{budget}/model.ckpt-{k}"
                                                  if checkpoint else None)))
    return ModelMetrics(ev, trainable_parameters=params, total_time=t_end * 1.1)


def write_nasbench101(path: str | os.PathLike,
                      models: Iterable[tuple[str, dict[str, Any], dict[int, list[ModelMetrics]]]],
                      ) -> int:
    """Write a NAS-Bench-101-format TFRecord file: for each (hash, spec dict, {budget:
    [metrics of each repeat]}), one record per (budget, repeat), in that order. Returns the
    number of records."""
    from .records import encode_record
    from .tfrecord import TFRecordWriter

    with TFRecordWriter(path) as w:
        for h, spec, runs in models:
            adjacency = "".join(str(int(x)) for row in spec["matrix"] for x in row)
            ops = ",".join(spec["ops"])
            for budget, reps in runs.items():
                for m in reps:
                    w.write(encode_record(h, budget, adjacency, ops, m))
    return w.count


def synthetic_nasbench101(path: str | os.PathLike, n_models: int, budgets: Sequence[int] = (108,),
                          repeats: int = 3, seed: int = 0, real_specs: int = 500,
                          checkpoint: bool = False) -> tuple[int, list[tuple[str, dict]]]:
    """A synthetic table file of ``n_models`` models x ``budgets`` x ``repeats`` records.

    The first ``min(real_specs, n_models)`` models are distinct valid cells under their true
    module hashes; the others reuse those specs under made-up unique hashes (md5 of their
    index), which keeps generation fast at 423,624 models. Returns (records written, the
    (hash, spec) pairs of the real cells).
    """
    import hashlib

    rng = np.random.default_rng(seed)
    real = random_specs(min(real_specs, n_models), seed=seed)

    def models():
        for i in range(n_models):
            if i < len(real):
                h, spec = real[i]
            else:
                h = hashlib.md5(f"nb101-synthetic-{seed}-{i}".encode()).hexdigest()
                spec = real[i % len(real)][1]
            params = int(rng.integers(200_000, 50_000_000))
            yield h, spec, {b: [synthetic_metrics(rng, b, params, checkpoint)
                                for _ in range(repeats)] for b in budgets}

    return write_nasbench101(path, models()), real
