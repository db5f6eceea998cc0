"""Seed packing in float32 (issue 20): are the seed-level statistics of packed searches those
of separate ones?

    python benchmarks/packing_statistics.py                        # darts, sdarts-adv; 10 seeds
    python benchmarks/packing_statistics.py --methods darts --modes separate   # one piece
    python benchmarks/packing_statistics.py --report-only          # the report from what ran

In float64 a packed group equals its separate runs to rounding (tests/test_packing.py). In
float32 the two sum in other orders, and as between any two floating-point paths (docs/speed.md,
"Numerics") their trajectories part after some tens of steps, so the claim to check is
statistical: over 10 seeds, the per-seed final results of packed searches are distributed as
those of separate searches. For each method the same 10 searches (seeds 0-9, the small setting:
DARTS space, 5 cells, 8 channels, batch 32, on digits, 3 epochs of 10 steps, the one-shot
oracle)
run through the real runner twice: one after another (``run_seeds(pack=1)``) and as one pack of
10 (``run_seeds(pack=10)``, the path of ``run --seeds 0-9`` and ``sweep --pack 10``).

Per seed, from the run directories: the last epoch's search-val accuracy, train and
alpha-val loss, the parameter-free share of the derived normal and reduction cells, the
one-shot anytime test error, and from the final alphas the mean entropy and mean max-softmax
of the edges' mixing weights. Per metric the report gives both sides' mean and sd, the paired
differences (mean, sd, and their root mean square relative to the seed-to-seed sd), a Wilcoxon
signed-rank test of the paired differences and a Mann-Whitney U test of the two samples.

The runs are resumable (rerunning continues where a piece stopped), so the work can be split
into pieces of a few minutes (``--methods``, ``--modes``); the report (Markdown and JSON under
``--out``) is written once every run is done, with the command, commit, machine, date and the
summed wall time of the searches.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nasbench_eval.config import RunConfig  # noqa: E402
from nasbench_eval.packing.runner import run_seeds  # noqa: E402
from nasbench_eval.resolve import resolve_config  # noqa: E402
from nasbench_eval.rundir import read_summary  # noqa: E402

MODES = ("separate", "packed")
METRICS = ("val_acc", "train_loss", "alpha_val_loss", "param_free_normal",
           "param_free_reduce", "anytime_test_error", "alpha_entropy", "alpha_max_softmax")


def base_config(args: argparse.Namespace, method: str) -> RunConfig:
    return RunConfig(method=method, space=args.space, dataset=args.dataset, epochs=args.epochs,
                     layers=args.layers, channels=args.channels, batch_size=args.batch_size,
                     max_steps_per_epoch=args.max_steps, oracle="oneshot", device="cpu",
                     progress=False,
                     bn_recalibration_batches=args.bn_batches)


def run_dirs(cfg: RunConfig, seeds: list[int], out: Path) -> list[Path]:
    cfgs = [resolve_config(replace(cfg, seed=s, out=str(out))) for s in seeds]
    return [out / c.run_id() for c in cfgs]


def alpha_stats(run_dir: Path) -> dict[str, float]:
    """Mean entropy and mean max-softmax of the final alphas' mixing weights, over every
    edge of both cell types (from the run's last checkpoint)."""
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=False)
    probs = torch.cat([a.double().softmax(-1) for a in state["method"]["alphas"].values()])
    entropy = -(probs * probs.clamp_min(1e-300).log()).sum(-1)
    return {"alpha_entropy": float(entropy.mean()),
            "alpha_max_softmax": float(probs.max(-1).values.mean())}


def seed_metrics(run_dir: Path) -> dict[str, float]:
    import csv

    with open(run_dir / "metrics.csv") as f:
        last = list(csv.DictReader(f))[-1]
    out = {k: float(last[k]) for k in METRICS if k in last and last[k] not in ("", None)}
    out.update(alpha_stats(run_dir))
    summary = read_summary(run_dir) or {}
    out["wall_time_s"] = float(summary.get("wall_time_s") or 0.0)
    return out


def compare(separate: list[float], packed: list[float]) -> dict[str, Any]:
    """Paired differences against the seed-to-seed spread, and the two tests."""
    from scipy import stats

    diffs = [p - s for p, s in zip(packed, separate)]
    sd = statistics.stdev(separate + packed) if len(separate) > 1 else 0.0
    rms = math.sqrt(sum(d * d for d in diffs) / len(diffs))
    row: dict[str, Any] = {
        "separate_mean": statistics.fmean(separate), "separate_sd": statistics.stdev(separate),
        "packed_mean": statistics.fmean(packed), "packed_sd": statistics.stdev(packed),
        "diff_mean": statistics.fmean(diffs), "diff_sd": statistics.stdev(diffs),
        "diff_rms_over_seed_sd": rms / sd if sd > 0 else None,
        "identical_pairs": sum(d == 0 for d in diffs),
    }
    if any(d != 0 for d in diffs):
        row["wilcoxon_p"] = float(stats.wilcoxon(packed, separate, zero_method="zsplit").pvalue)
    else:
        row["wilcoxon_p"] = 1.0
    row["mannwhitney_p"] = float(stats.mannwhitneyu(packed, separate,
                                                    alternative="two-sided").pvalue)
    return row


def holm_summary(record: dict) -> dict[str, Any]:
    """Per test, the smallest Holm-adjusted p over every method and metric of the report (the
    metrics are not independent: entropy and max-softmax read the same alphas)."""
    out: dict[str, Any] = {}
    for test in ("wilcoxon_p", "mannwhitney_p"):
        ps = sorted((c[test], f"{method} {k}") for method, m in record["methods"].items()
                    for k, c in m["metrics"].items())
        n = len(ps)
        adjusted, running = [], 0.0
        for i, (pv, name) in enumerate(ps):
            running = max(running, min(1.0, (n - i) * pv))
            adjusted.append((running, pv, name))
        best = adjusted[0] if adjusted else None
        out[test] = {"tests": n, "below_0.05_unadjusted": sum(pv < 0.05 for pv, _ in ps),
                     "smallest": None if best is None else
                     {"name": best[2], "p": best[1], "holm_p": best[0]}}
    return out


def _commit() -> str:
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=7"],
                              cwd=ROOT, text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv: list[str] | None = None) -> dict | None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--methods", default="darts,sdarts-adv")
    p.add_argument("--modes", default="separate,packed")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--space", default="darts")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--max-steps", type=int, default=10,
                   help="search steps per epoch (the search-val pass and the epoch end are "
                        "full)")
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bn-batches", type=int, default=5, help="BN recalibration batches")
    p.add_argument("--work", default="runs/packing-statistics",
                   help="where the run directories go (resumed on a rerun)")
    p.add_argument("--out", default="results/benchmarks")
    p.add_argument("--report-only", action="store_true", help="run nothing; report what ran")
    args = p.parse_args(argv)

    methods = [m for m in args.methods.split(",") if m]
    modes = [m for m in args.modes.split(",") if m]
    seeds = list(range(args.seeds))
    work = Path(args.work)
    print(f"packing statistics: {', '.join(methods)}, seeds 0-{args.seeds - 1}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)", flush=True)
    if not args.report_only:
        for method in methods:
            for mode in modes:
                t = time.perf_counter()
                cfg = base_config(args, method)
                run_seeds(replace(cfg, out=str(work / mode)), seeds,
                          pack=1 if mode == "separate" else len(seeds), resume=True)
                print(f"{method} {mode}: done ({time.perf_counter() - t:.0f} s this call)",
                      flush=True)

    record: dict[str, Any] = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None
                                                         else sys.argv[1:])]),
        "commit": _commit(), "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.node()} ({platform.machine()}, {platform.processor() or 'cpu'})",
        "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "setting": {"space": args.space, "dataset": args.dataset, "epochs": args.epochs,
                    "layers": args.layers, "channels": args.channels,
                    "batch_size": args.batch_size, "max_steps_per_epoch": args.max_steps,
                    "seeds": seeds, "oracle": "oneshot",
                    "precision": "float32", "device": "cpu"},
        "methods": {},
    }
    for method in methods:
        cfg = base_config(args, method)
        dirs = {mode: run_dirs(cfg, seeds, work / mode) for mode in MODES}
        status = {mode: [(read_summary(d, unreadable_ok=True) or {}).get("status")
                         for d in ds] for mode, ds in dirs.items()}
        if any(s != "finished" for ss in status.values() for s in ss):
            print(f"{method}: not every run is finished yet ({status}); no report", flush=True)
            return None
        per = {mode: [seed_metrics(d) for d in ds] for mode, ds in dirs.items()}
        packed_seeds = json.loads((dirs["packed"][0] / "config.json").read_text())[
            "execution"].get("packed_seeds")
        record["methods"][method] = {
            "packed_seeds": packed_seeds,
            # separate: the 10 runs one after another; packed: the one pack (every seed's
            # summary holds the pack's wall time)
            "wall_time_s": {"separate": sum(r["wall_time_s"] for r in per["separate"]),
                            "packed": max(r["wall_time_s"] for r in per["packed"])},
            "per_seed": per,
            "metrics": {k: compare([r[k] for r in per["separate"]], [r[k] for r in per["packed"]])
                        for k in METRICS if k in per["separate"][0]},
        }
    record["holm"] = holm_summary(record)
    md = to_markdown(record)
    print(md)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "packing-statistics-cpu.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / "packing-statistics-cpu.md").write_text(md)
    print(f"wrote {out}/packing-statistics-cpu.md and .json", flush=True)
    return record


def _f(v: Any) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3g}" if abs(v) < 1e-3 and v != 0 else f"{v:.4f}"


def to_markdown(r: dict) -> str:
    s = r["setting"]
    lines = [
        "# Seed packing in float32: seed-level statistics, packed vs separate", "",
        f"- command: `{r['command']}` (the report; the runs it reads resume where they stopped, "
        f"so they may have been made in pieces by the same command with `--methods`/`--modes`)",
        f"- commit {r['commit']}, {r['date']}, {r['machine']}, torch {r['torch']}, python "
        f"{r['python']}, {r['threads']} CPU thread(s)",
        f"- setting: {s['space']} space on {s['dataset']}, {s['layers']} cells, {s['channels']} "
        f"channels, batch {s['batch_size']}, {s['epochs']} epochs of "
        f"{s['max_steps_per_epoch']} steps (full search-val pass and epoch end), one-shot oracle, "
        f"{s['precision']} on the {s['device']}; seeds {s['seeds'][0]}-{s['seeds'][-1]} run "
        f"one after another (separate) and as one pack of {len(s['seeds'])} (packed)",
        "- per metric: both sides' mean and sd over the seeds; the paired differences "
        "(packed - separate) and their root mean square relative to the seed-to-seed sd (both "
        "sides pooled); Wilcoxon signed-rank p (paired) and Mann-Whitney U p (two samples)",
        "",
    ]
    for method, m in r["methods"].items():
        w = m["wall_time_s"]
        lines += [f"## {method}", "",
                  f"Wall time of the searches (from the runs' summaries): separate "
                  f"{w['separate']:.0f} s (the sum of the {len(s['seeds'])} runs), packed "
                  f"{w['packed']:.0f} s (the one pack); measured on a shared CPU, not a "
                  f"timing. config.json of the packed runs: packed_seeds "
                  f"{m['packed_seeds']}.", "",
                  "| metric | separate mean (sd) | packed mean (sd) | paired diff mean (sd) "
                  "| diff RMS / seed sd | identical pairs | Wilcoxon p | Mann-Whitney p |",
                  "|---|---|---|---|---|---|---|---|"]
        for k, c in m["metrics"].items():
            lines.append(
                f"| {k} | {_f(c['separate_mean'])} ({_f(c['separate_sd'])}) | "
                f"{_f(c['packed_mean'])} ({_f(c['packed_sd'])}) | {_f(c['diff_mean'])} "
                f"({_f(c['diff_sd'])}) | {_f(c['diff_rms_over_seed_sd'])} | "
                f"{c['identical_pairs']}/{len(s['seeds'])} | {_f(c['wilcoxon_p'])} | "
                f"{_f(c['mannwhitney_p'])} |")
        lines.append("")
    for test, h in r.get("holm", {}).items():
        b = h["smallest"]
        if b is not None:
            lines.append(f"- {test.replace('_p', '')}: {h['below_0.05_unadjusted']} of "
                         f"{h['tests']} tests below 0.05 unadjusted; smallest p {_f(b['p'])} "
                         f"({b['name']}), Holm-adjusted over the {h['tests']} tests "
                         f"{_f(b['holm_p'])}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
