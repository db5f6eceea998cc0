"""Benchmark of the NAS-Bench-101 table reader on synthetic files of the real format.

Sizes (the issue asks for "423,624 records"; the real nasbench_only108.tfrecord has 423,624
*models* x 3 repeats = 1,270,872 records, 499 MB), so both are run by default:

* ``issue``:     423,624 records = 141,208 models x 3 repeats at 108 epochs
* ``realistic``: 1,270,872 records = 423,624 models x 3 repeats (~450 MB)

For each: write the file (not timed as part of the import), import it (CRC check, decode,
cache write), load the cache, and query it. Baselines are measured in the same run on a
100,000-record file: the naive loop the official API runs (frame walk, ``json.loads``,
``base64``, a protobuf decode per record, a dict-of-dicts of per-repeat points; here with
our generic decoder and no CRC check), a pure-Python per-byte CRC32C, a pickle of the naive
table (how NASLib caches it), and a plain dict lookup for queries.

    OMP_NUM_THREADS=1 python benchmarks/nb101_table.py [--sizes issue,realistic] [--workdir D]
"""
from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import pickle
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from nasbench_eval.nb101 import tfrecord as tfr
from nasbench_eval.nb101.records import (EvaluationData, ModelMetrics, decode_metrics,
                                         encode_record)
from nasbench_eval.nb101.table import (NB101Table, import_nasbench101, random_specs,
                                       spec_hash)

SIZES = {"issue": (141_208, 3), "realistic": (423_624, 3), "smoke": (3_000, 3)}


def write_file(path: Path, n_models: int, repeats: int, seed: int = 0) -> tuple[int, list]:
    """Synthetic only108-layout file; the first 2,000 models are real cells under their true
    hashes, the others reuse those specs under unique made-up hashes (hashing 423k cells
    would dominate the run and is not what is measured)."""
    import hashlib

    rng = np.random.default_rng(seed)
    real = random_specs(min(2000, n_models), seed=seed)
    texts = [("".join(str(x) for row in s["matrix"] for x in row), ",".join(s["ops"]))
             for _, s in real]
    chunk = 20_000
    with tfr.TFRecordWriter(path) as w:
        for c0 in range(0, n_models, chunk):
            n = min(chunk, n_models - c0)
            acc = rng.uniform(0.05, 0.95, (n, repeats, 3, 3)).astype(np.float32).astype(float)
            t_end = rng.uniform(100.0, 5000.0, (n, repeats))
            params = rng.integers(200_000, 50_000_000, n)
            for j in range(n):
                i = c0 + j
                h = real[i][0] if i < len(real) else hashlib.md5(b"s%d" % i).hexdigest()
                adj, ops = texts[i % len(texts)]
                for r in range(repeats):
                    a, t = acc[j, r].tolist(), float(t_end[j, r])
                    ev = [EvaluationData(e, t * k / 2.0, *a[k]) for k, e in
                          enumerate((0.0, 54.0, 108.0))]
                    m = ModelMetrics(ev, int(params[j]), t * 1.1)
                    w.write(encode_record(h, 108, adj, ops, m))
    return w.count, real


def naive_import(path: Path) -> dict:
    """What the official API does per record, minus TensorFlow and the CRC check."""
    fixed, computed = {}, {}
    with open(path, "rb") as f:
        raw = f.read()
    pos, n = 0, len(raw)
    while pos < n:
        (length,) = struct.unpack_from("<Q", raw, pos)
        data = raw[pos + 12:pos + 12 + length]
        pos += 16 + length
        h, epochs, adjacency, ops, metrics = json.loads(data.decode("utf-8"))
        dim = int(np.sqrt(len(adjacency)))
        m = decode_metrics(base64.b64decode(metrics))
        if h not in fixed:
            fixed[h] = {"module_adjacency": np.array([int(e) for e in adjacency],
                                                     dtype=np.int8).reshape(dim, dim),
                        "module_operations": ops.split(","),
                        "trainable_parameters": m.trainable_parameters}
            computed[h] = {}
        e1, e2 = m.evaluation_data[1], m.evaluation_data[2]
        computed[h].setdefault(epochs, []).append({
            "halfway_training_time": e1.training_time,
            "halfway_train_accuracy": e1.train_accuracy,
            "halfway_validation_accuracy": e1.validation_accuracy,
            "halfway_test_accuracy": e1.test_accuracy,
            "final_training_time": e2.training_time,
            "final_train_accuracy": e2.train_accuracy,
            "final_validation_accuracy": e2.validation_accuracy,
            "final_test_accuracy": e2.test_accuracy})
    return {"fixed": fixed, "computed": computed}


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def rate(n: int, s: float) -> str:
    return f"{n / s:,.0f}/s"


def bench_queries(table: NB101Table, real: list, seconds: float = 2.0) -> dict[str, float]:
    rng = np.random.default_rng(1)
    hashes = [h.decode() for h in table.hashes[rng.integers(0, len(table), 50_000)]]
    out = {}
    for name, fn in (("index(h)", table.index), ("test_error(h)", table.test_error),
                     ("query(h) (full result)", table.query)):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            for h in hashes[:5000]:
                fn(h)
            n += 5000
        out[name] = n / (time.perf_counter() - t0)
    specs = [s for _, s in real[:500]]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for s in specs:
            table.query_spec(s)
        n += len(specs)
    out["query_spec(spec)"] = n / (time.perf_counter() - t0)
    n, t0 = 0, time.perf_counter()
    for s in specs:
        spec_hash(s)
    out["spec_hash alone"] = len(specs) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    rows = table.indices(hashes)
    err = table.mean_test_error(rows)
    out["vectorised indices+mean_test_error"] = len(hashes) / (time.perf_counter() - t0)
    assert np.isfinite(err).all()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="issue,realistic", help="comma list of: issue, realistic")
    ap.add_argument("--workdir", default=None, help="where the files go (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the written files")
    ap.add_argument("--baseline-records", type=int, default=100_002,
                    help="size of the baseline file (default 100,002 = 33,334 models x 3)")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="nb101-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, workdir {work}")
    try:
        base = None
        if not args.no_baseline:
            base = run_baseline(work, args.baseline_records)
        for size in args.sizes.split(","):
            run_size(work, size.strip(), base)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def run_baseline(work: Path, records: int) -> dict[str, float]:
    print(f"\n== baselines on a {records:,}-record file (same format) ==")
    path = work / "baseline.tfrecord"
    n_rec, real = write_file(path, records // 3, 3, seed=5)
    size = path.stat().st_size
    t_ours, _ = timed(import_nasbench101, path, cache=work / "baseline.npz", progress=False)
    t_naive, naive = timed(naive_import, path)
    print(f"import, ours (CRC checked):        {t_ours:7.2f} s  {rate(n_rec, t_ours)} records")
    print(f"import, naive json loop (no CRC):  {t_naive:7.2f} s  {rate(n_rec, t_naive)} records"
          f"   -> ours is {t_naive / t_ours:.1f}x faster")
    raw = path.read_bytes()[:2 << 20]
    t_scalar, _ = timed(tfr.crc32c, raw)
    t_vec, _ = timed(lambda: [None for _ in tfr.iter_record_blocks(path)])
    scalar_mbs, vec_mbs = len(raw) / t_scalar / 1e6, size / t_vec / 1e6
    print(f"CRC32C, pure-Python per byte:      {scalar_mbs:7.1f} MB/s")
    print(f"frame walk + all CRCs (numpy):     {vec_mbs:7.1f} MB/s   -> "
          f"{vec_mbs / scalar_mbs:.0f}x")
    pkl = work / "baseline.pkl"
    with open(pkl, "wb") as f:
        pickle.dump(naive, f, protocol=pickle.HIGHEST_PROTOCOL)
    gc.collect()
    t_pickle, _ = timed(lambda: pickle.load(open(pkl, "rb")))
    t_load, table = timed(NB101Table.load, work / "baseline.npz")
    print(f"load, pickle of the naive table:   {t_pickle:7.3f} s ({pkl.stat().st_size / 1e6:.0f} MB)")
    print(f"load, our npz cache:               {t_load:7.3f} s "
          f"({(work / 'baseline.npz').stat().st_size / 1e6:.0f} MB)   -> "
          f"{t_pickle / t_load:.1f}x faster")
    hashes = list(naive["computed"])[:5000]
    comp = naive["computed"]
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        for h in hashes:
            reps = comp[h][108]
            1.0 - sum(r["final_test_accuracy"] for r in reps) / len(reps)
        n += len(hashes)
    dict_qps = n / (time.perf_counter() - t0)
    print(f"query, dict lookup + mean (naive): {dict_qps:,.0f}/s")
    del naive, comp
    gc.collect()
    return {"dict_qps": dict_qps, "naive_rps": n_rec / t_naive}


def run_size(work: Path, size: str, base: dict | None) -> None:
    n_models, repeats = SIZES[size]
    print(f"\n== {size}: {n_models:,} models x {repeats} repeats = "
          f"{n_models * repeats:,} records ==")
    path = work / f"{size}.tfrecord"
    t_write, (n_rec, real) = timed(write_file, path, n_models, repeats)
    mb = path.stat().st_size / 1e6
    print(f"write synthetic file (our writer): {t_write:7.1f} s  {mb:.0f} MB")
    cache = work / f"{size}.npz"
    t_imp, report = timed(import_nasbench101, path, cache=cache, progress=False)
    assert report.records == n_rec and report.models == n_models
    line = f"import -> cache:                   {t_imp:7.1f} s  {rate(n_rec, t_imp)} records, " \
           f"{mb / t_imp:.0f} MB/s; cache {cache.stat().st_size / 1e6:.0f} MB"
    if base:
        line += f"   (naive loop would take ~{n_rec / base['naive_rps']:.0f} s: " \
                f"{n_rec / base['naive_rps'] / t_imp:.1f}x)"
    print(line)
    gc.collect()
    t_load, table = timed(NB101Table.load, cache)
    print(f"load cache:                        {t_load:7.3f} s")
    for name, qps in bench_queries(table, real).items():
        extra = f"   ({qps / base['dict_qps']:.2f}x a dict lookup)" if base and "(h)" in name else ""
        print(f"queries/s, {name + ':':33s}{qps:12,.0f}{extra}")
    path.unlink()
    cache.unlink()


if __name__ == "__main__":
    main()
