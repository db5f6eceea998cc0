#!/usr/bin/env bash
# Deeper supernets on S1-S4 (issue 21), from a clean checkout, in one command:
#   bash studies/deep-s1s4.sh [OUT_DIR]     # about 25 minutes on one CPU core
# first-order DARTS, 8 cells x 16 channels, digits, 10 epochs, 3 seeds per space
# (studies/deep-s1s4.toml); then the leaderboard, the fidelity table, the plots, a per-run
# table (runs.md) and RUN.md. Every step resumes: rerun after an interruption.
set -euo pipefail
out="${1:-results/deep-s1s4-digits}"
start=$(date +%s)
nasbench-eval sweep studies/deep-s1s4.toml --quiet
sweep_s=$(( $(date +%s) - start ))
runs="$out/runs"
nasbench-eval leaderboard "$runs" --quiet --out "$out/leaderboard.csv" > "$out/leaderboard.txt"
nasbench-eval plot "$runs" --quiet --kind param-free --kind hessian --format png,pdf --out "$out"
nasbench-eval fidelity "$runs" --quiet --out "$out"
python3 - "$out" "$sweep_s" <<'PY'
import csv, datetime, json, os, platform, subprocess, sys
from pathlib import Path
import torch
out, sweep_s = Path(sys.argv[1]), int(sys.argv[2])

def col(rows, key):
    return [float(r[key]) if r.get(key, "") not in ("", "nan") else None for r in rows]

def fmt(vals):
    vals = [v for v in vals if v is not None]
    return f"{vals[0]:.2f} / {max(vals):.2f} / {vals[-1]:.2f}" if vals else ""

table = ["# Deeper supernets on S1-S4: every run", "",
         "first-order DARTS, 8 cells x 16 channels, digits, 10 epochs (studies/deep-s1s4.toml); "
         "param-free share of the derived cell first / max / final; lambda_max at epochs 0, 5, 9; "
         "anytime test error of the oracle auto picked, at epochs 5 and 10.", "",
         "| run | space | seed | param-free normal | param-free reduce | lambda_max | anytime err | oracle | search val acc |",
         "|---|---|---|---|---|---|---|---|---|"]
for d in sorted((out / "runs").glob("darts-*")):
    if not (d / "metrics.csv").is_file():
        continue
    rows = list(csv.DictReader((d / "metrics.csv").open()))
    cfg = json.loads((d / "config.json").read_text())["config"]
    eig = [f"{r['epoch']}:{float(r['hessian_eig']):.3g}" for r in rows if r.get("hessian_eig")]
    err = [f"{float(r['anytime_test_error']):.3f}" for r in rows if r.get("anytime_test_error")]
    table.append(f"| {d.name} | {cfg['space']} | {cfg['seed']} | {fmt(col(rows, 'param_free_normal'))} | "
                 f"{fmt(col(rows, 'param_free_reduce'))} | {' '.join(eig)} | {' '.join(err)} | "
                 f"{cfg['oracle']} | {float(rows[-1]['val_acc']):.3f} |")
(out / "runs.md").write_text("\n".join(table) + "\n")
git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
dirty = git("status", "--porcelain", "--untracked-files=no")
lines = [
    "# How these files were made", "",
    f"- command: `bash studies/deep-s1s4.sh {out}` (sweep file `studies/deep-s1s4.toml`)",
    f"- commit: `{git('rev-parse', 'HEAD')}`" + (" (with uncommitted changes)" if dirty else " (clean tree)"),
    f"- machine: {platform.machine()}, {os.cpu_count()} CPU cores, {platform.platform()}; "
    f"torch {torch.__version__}, Python {platform.python_version()}",
    f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC (report written)",
    f"- wall time of the sweep command: {sweep_s // 60} min {sweep_s % 60} s (0 when every run "
    "was already there; the runs' own wall_time_s are in their summary.json)",
]
(out / "RUN.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
