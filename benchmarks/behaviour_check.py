"""Behaviour fingerprint of the harness: a fixed set of short runs, reduced to what they compute.

Used to show that a refactoring changes no result (issue 15): record the fingerprint at the
commit before the change, again after it, and compare. Timing fields and the environment
record are left out; everything else a run writes is kept: run ids, every ``metrics.csv``
cell, ``genotypes.jsonl``, ``summary.json``, ``config.json``'s settings, the evaluation
stage's files and the sweep's run list.

    python benchmarks/behaviour_check.py record  --out /tmp/after.json
    python benchmarks/behaviour_check.py compare results/benchmarks/behaviour-3e5e372.json /tmp/after.json

The runs go through the command line (``nasbench_eval.cli:main``), the interface that must
stay stable, one torch thread each (results do not depend on the machine's load). The whole
set takes a few minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TINY = ["--dataset", "digits", "--epochs", "2", "--layers", "3", "--channels", "4",
        "--batch-size", "16", "--max-steps-per-epoch", "3", "--quiet"]
METHODS_S3 = {  # every method on s3; options keep the slow ones tiny
    "darts": ["--hessian-every", "1"],
    "darts-2nd": [],
    "sdarts-rs": [],
    "sdarts-adv": ["-o", "pgd_steps=2"],
    "maxw": [],
    "msr": [],
    "darts-es": ["-o", "es_every=1", "-o", "es_window=1", "-o", "es_delta=1",
                 "-o", "es_start_epoch=0"],
    "rdarts-l2": [],
    "rdarts-dp": [],
    "random-ws": ["-o", "rws_samples=6", "-o", "rws_eval_batches=2", "-o", "rws_top=2"],
}
RUNS: list[tuple[str, list[str]]] = (
    [(f"{m}-s3", ["--method", m, "--space", "s3", *TINY, *extra])
     for m, extra in METHODS_S3.items()]
    + [("darts-darts", ["--method", "darts", "--space", "darts", *TINY]),
       ("sdarts-adv-nb1shot1-3-train", ["--method", "sdarts-adv", "--space", "nb1shot1-3", *TINY,
                                        "-o", "pgd_steps=1", "--oracle", "train",
                                        "--oracle-option", "train_epochs=1",
                                        "--oracle-option", "channels=4"])]
)
EVALUATE = ["--epochs", "1", "--layers", "2", "--channels", "4", "--batch-size", "16",
            "--max-steps-per-epoch", "3", "--quiet"]
SWEEP_TOML = """\
name = "behaviour"
methods = ["darts", "sdarts-rs"]
spaces = ["s2", "s3"]
datasets = ["digits"]
seeds = "0"
epochs = 2
layers = 3
channels = 4
batch_size = 16
max_steps_per_epoch = 3
executor = "local"
cpus_per_run = 1
"""

# keys that say when, where or how fast, not what was computed
_VOLATILE = re.compile(r"(time|_s$|^started|^ended|^finished|date|host|^pid$|^git|^torch$|^python$|"
                       r"platform|threads|environment|device_name|created|updated|duration|"
                       r"^resumed$|^out$|path|^data_root$|dir$|^command$|^argv$|^sweep_file$)")


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in sorted(obj.items()) if not _VOLATILE.search(str(k))}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, float):
        return repr(obj)  # exact
    return obj


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [{k: v for k, v in row.items() if not _VOLATILE.search(k)}
                for row in csv.DictReader(f)]


def fingerprint_dir(root: Path) -> dict[str, Any]:
    """Everything under ``root`` a run writes, timing and environment aside."""
    out: dict[str, Any] = {}
    for p in sorted(root.rglob("*")):
        if not p.is_file() or p.suffix in (".pt", ".tmp", ".lock", ".log") or "cache" in p.parts:
            continue
        rel = str(p.relative_to(root))
        if p.suffix == ".csv":
            out[rel] = _read_csv(p)
        elif p.suffix == ".json":
            doc = json.loads(p.read_text())
            if p.name == "config.json":  # the settings, not the environment record
                doc = {k: doc.get(k) for k in ("run_id", "config", "weights", "steps_per_epoch")}
            out[rel] = _clean(doc)
        elif p.suffix == ".jsonl":
            out[rel] = [_clean(json.loads(line)) for line in p.read_text().splitlines() if line]
    return out


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NASBENCH_EVAL_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    code = "import torch; torch.set_num_threads(1); from nasbench_eval.cli import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


def record(work: Path, only: set[str] | None = None) -> dict[str, Any]:
    results: dict[str, Any] = {"runs": {}, "errors": {}}
    t_all = time.perf_counter()

    def call(label: str, args: list[str], out: Path) -> None:
        t0 = time.perf_counter()
        p = _cli([*args, "--out", str(out)], work)
        dt = time.perf_counter() - t0
        print(f"{label:32s} rc={p.returncode} {dt:6.1f}s", file=sys.stderr, flush=True)
        if p.returncode != 0:
            results["errors"][label] = (p.stderr or p.stdout)[-2000:]

    for label, args in RUNS:
        if only and label not in only:
            continue
        out = work / label
        call(label, ["run", *args], out)
        results["runs"][label] = fingerprint_dir(out)
    if not only or "evaluate" in only:
        src = work / "darts-s3"
        run_dirs = [p for p in src.iterdir() if (p / "summary.json").is_file()] if src.exists() else []  # not oracle-cache/
        out = work / "evaluate"
        if run_dirs:
            call("evaluate", ["evaluate", str(run_dirs[0]), *EVALUATE], out)
        results["runs"]["evaluate"] = fingerprint_dir(run_dirs[0]) if run_dirs else {}
    if not only or "sweep" in only:
        out = work / "sweep"
        toml = work / "behaviour.toml"
        toml.write_text(SWEEP_TOML)
        call("sweep", ["sweep", str(toml)], out)
        results["runs"]["sweep"] = fingerprint_dir(out)
    results["wall_s"] = round(time.perf_counter() - t_all, 1)
    return results


def compare(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable differences (empty: identical)."""
    diffs: list[str] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if len(diffs) > 200:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                if k not in x:
                    diffs.append(f"{where}/{k}: only in the second")
                elif k not in y:
                    diffs.append(f"{where}/{k}: only in the first")
                else:
                    walk(x[k], y[k], f"{where}/{k}")
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                diffs.append(f"{where}: {len(x)} vs {len(y)} entries")
            for i, (u, v) in enumerate(zip(x, y)):
                walk(u, v, f"{where}[{i}]")
        elif x != y:
            diffs.append(f"{where}: {x!r} != {y!r}")

    walk(a["runs"], b["runs"], "")
    for label in sorted(set(a.get("errors", {})) | set(b.get("errors", {}))):
        diffs.append(f"{label}: failed in {'first' if label in a.get('errors', {}) else 'second'}")
    return diffs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("record")
    r.add_argument("--out", required=True)
    r.add_argument("--keep", help="keep the run directories here")
    r.add_argument("--only", nargs="*", help="labels to run (default: all)")
    c = sub.add_parser("compare")
    c.add_argument("first")
    c.add_argument("second")
    args = ap.parse_args()
    if args.cmd == "record":
        work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="behaviour-"))
        work.mkdir(parents=True, exist_ok=True)
        try:
            res = record(work, set(args.only) if args.only else None)
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True).stdout.strip()
        res["commit"] = commit
        Path(args.out).write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
        n = sum(len(v) for v in res["runs"].values())
        print(f"recorded {len(res['runs'])} groups, {n} files, {len(res['errors'])} errors, "
              f"{res['wall_s']} s -> {args.out}")
        sys.exit(1 if res["errors"] else 0)
    a, b = (json.loads(Path(p).read_text()) for p in (args.first, args.second))
    diffs = compare(a, b)
    for d in diffs:
        print(d)
    print(f"{'IDENTICAL' if not diffs else 'DIFFERENT'}: {a.get('commit')} vs {b.get('commit')}, "
          f"{len(diffs)} difference(s)")
    sys.exit(1 if diffs else 0)


if __name__ == "__main__":
    main()
