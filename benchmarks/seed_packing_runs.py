"""Seed packing end to end: the wall time of whole runs of K seeds, three ways (issue 20).

    OMP_NUM_THREADS=2 python benchmarks/seed_packing_runs.py            # K = 8, 2 workers
    python benchmarks/seed_packing_runs.py --seeds 4 --epochs 1 --steps 5   # a quick look

``benchmarks/seed_packing.py`` times the search step alone. This runs what a user runs, epoch
ends included (BN recalibration, one-shot scoring, derivation, checkpoints), each way in
fresh processes as real commands are:

* sequential: one ``run`` per seed, one after another, ``--threads W``;
* packed: one process running all K seeds as one pack (``run --seeds``, ``--threads W``);
* packed workers: ``run --seeds --workers W`` (W single-thread packs side by side).

The setting is benchmarks/search_speed.py's ``small`` one on synthetic data (``--images``
training images, capped steps per epoch). Writes Markdown and JSON to ``--out``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = """
import sys, json, torch
sys.path.insert(0, {here!r})
from dataclasses import replace
from search_speed import SETTINGS, _config
from nasbench_eval.packing.runner import run_seeds
from nasbench_eval.runner import run
torch.set_num_threads({threads})
cfg = replace(_config("darts", SETTINGS["small"], "cpu", images={images}), epochs={epochs},
              max_steps_per_epoch={steps}, out={out!r})
seeds = {seeds}
if {single}:
    run(replace(cfg, seed=seeds[0]))
else:
    run_seeds(cfg, seeds, workers={workers})
"""


def _timed(out: str, seeds: list[int], threads: int, workers: int | None, single: bool,
           args: argparse.Namespace) -> float:
    code = CHILD.format(here=str(HERE), threads=threads, images=args.images,
                        epochs=args.epochs, steps=args.steps, out=out, seeds=seeds,
                        single=single, workers=workers)
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**__import__("os").environ, "OMP_NUM_THREADS": str(threads)})
    if done.returncode:
        raise SystemExit(f"a run failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8, help="K seeds (0..K-1)")
    p.add_argument("--cores", type=int, default=2, help="W: threads, or worker processes")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--steps", type=int, default=25, help="steps per epoch")
    p.add_argument("--images", type=int, default=4000, help="synthetic training images")
    p.add_argument("--out", default="results/benchmarks")
    args = p.parse_args(argv)
    seeds = list(range(args.seeds))
    w = args.cores
    ways: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ways["sequential"] = sum(_timed(f"{tmp}/seq", [s], w, None, True, args) for s in seeds)
        print(f"sequential: {ways['sequential']:.1f} s", flush=True)
        ways["packed"] = _timed(f"{tmp}/packed", seeds, w, None, False, args)
        print(f"packed: {ways['packed']:.1f} s", flush=True)
        ways["packed-workers"] = _timed(f"{tmp}/workers", seeds, 1, w, False, args)
        print(f"packed workers: {ways['packed-workers']:.1f} s", flush=True)
        same = all(
            json.loads((Path(f"{tmp}/packed") / d.name / "summary.json").read_text())["status"]
            == "finished" for d in Path(f"{tmp}/seq").iterdir())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE).stdout.strip()
    record = {"command": "python " + " ".join([sys.argv[0], *(argv or sys.argv[1:])]),
              "commit": commit, "date": dt.datetime.now(dt.timezone.utc).isoformat(
                  timespec="seconds"), "python": platform.python_version(),
              "seeds": args.seeds, "cores": w, "epochs": args.epochs,
              "steps_per_epoch": args.steps, "images": args.images, "wall_s": ways,
              "same_run_ids_finished": same}
    lines = [f"# Seed packing end to end: {args.seeds} seeds, whole runs, {w} cores", "",
             f"- command: `{record['command']}`",
             f"- commit {commit}, {record['date']}, python {record['python']}; setting "
             f"`small` (5 cells, 8 channels, batch 32, synthetic 3x16x16, {args.images} "
             f"training images), darts, {args.epochs} epochs of {args.steps} steps, oracle "
             f"oneshot; each way in fresh processes; wall time includes process start, data, "
             f"epoch ends; benchmark wall time {sum(ways.values()) / 60:.1f} min", "",
             "| way | wall s | vs sequential |", "|---|---|---|"]
    labels = {"sequential": f"{args.seeds} sequential `run`s, {w} threads",
              "packed": f"`run --seeds 0-{args.seeds - 1} --threads {w}` (one pack)",
              "packed-workers": f"`run --seeds 0-{args.seeds - 1} --workers {w}`"}
    for way, s in ways.items():
        lines.append(f"| {labels[way]} | {s:.1f} | {ways['sequential'] / s:.2f}x |")
    md = "\n".join(lines) + "\n"
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seed-packing-runs-cpu.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "seed-packing-runs-cpu.md").write_text(md)
    return record


if __name__ == "__main__":
    main()
