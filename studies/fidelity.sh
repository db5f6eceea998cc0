#!/usr/bin/env bash
# The fidelity study (issue #10) from a clean checkout, in one command:
#   bash studies/fidelity.sh              # about 45 minutes on 2 CPU cores
#   bash studies/fidelity.sh OTHER.toml [OUT_DIR]
# The run directories go where the sweep file's `out` says; OUT_DIR (default: the folder above
# it) receives the reports.
# 1. runs the 60 searches of studies/fidelity.toml (rerun after an interruption: finished runs
#    are skipped, interrupted ones resume);
# 2. writes the leaderboard, the comparison with significance, the plots and the fidelity table
#    (the README's "Does it reproduce the papers?") into OUT_DIR, with RUN.md saying which
#    command, commit, machine and date produced them.
set -euo pipefail
study="${1:-studies/fidelity.toml}"
runs=$(python3 -c 'import sys
try: import tomllib
except ImportError: import tomli as tomllib  # Python 3.10
print(tomllib.load(open(sys.argv[1], "rb")).get("out", "runs"))' "$study")
out="${2:-$(dirname "$runs")}"
mkdir -p "$out"
start=$(date +%s)
nasbench-eval sweep "$study" --quiet
sweep_s=$(( $(date +%s) - start ))
nasbench-eval leaderboard "$runs" --quiet --out "$out/leaderboard.csv" > "$out/leaderboard.txt"
nasbench-eval compare "$runs" --quiet --out "$out/compare.csv" > "$out/compare.txt"
nasbench-eval plot "$runs" --quiet --kind param-free --kind hessian --kind seeds --kind anytime \
    --format png,pdf --out "$out"
nasbench-eval fidelity "$runs" --quiet --out "$out"
python3 - "$study" "$out" "$sweep_s" <<'PY'
import datetime, json, os, platform, subprocess, sys
import torch
study, out, sweep_s = sys.argv[1], sys.argv[2], int(sys.argv[3])
git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
dirty = git("status", "--porcelain", "--untracked-files=no")
lines = [
    f"# How these files were made", "",
    f"- command: `bash studies/fidelity.sh {study} {out}` (sweep file `{study}`)",
    f"- commit: `{git('rev-parse', 'HEAD')}`" + (" (with uncommitted changes)" if dirty else " (clean tree)"),
    f"- machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU cores, "
    f"{platform.platform()}; torch {torch.__version__}, Python {platform.python_version()}",
    f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC (report written)",
    f"- wall time of the sweep command: {sweep_s // 60} min {sweep_s % 60} s "
    "(0 when every run was already there)",
]
open(os.path.join(out, "RUN.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
