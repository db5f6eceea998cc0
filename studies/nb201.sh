#!/usr/bin/env bash
# The NAS-Bench-201 study (issue 21) from a clean checkout, in one command:
#   pip install 'nasbench-eval[nb201-offline]'   # the offline CIFAR-10 table (anytime oracle)
#   bash studies/nb201.sh [OUT_DIR]               # about 40 minutes on one CPU core
# Every step resumes: rerun after an interruption and finished runs are skipped.
# 1. three settings of first-order DARTS on nb201 with digits (seed 0): N = 1, 2 and 5 cells per
#    stage (layers 3, 6, 15), 16 channels; N = 2 is seed 0 of the main sweep;
# 2. the main sweep studies/nb201.toml: darts vs sdarts-adv, 5 seeds, N = 2;
# 3. leaderboard (with the published rows), comparison, plots, fidelity table and RUN.md.
set -euo pipefail
out="${1:-results/nb201-digits}"
mkdir -p "$out/explore"
start=$(date +%s)
common=(--method darts --space nb201 --dataset digits --seed 0 --channels 16
        --hessian-every 10 --oracle nb201-analog --device cpu --quiet
        --out "$out/explore" --resume)  # --resume: a finished run is skipped, an interrupted one continues
nasbench-eval run "${common[@]}" --layers 3 --epochs 40
nasbench-eval run "${common[@]}" --layers 15 --epochs 20
nasbench-eval sweep studies/nb201.toml --quiet
sweep_s=$(( $(date +%s) - start ))
runs="$out/runs"
nasbench-eval leaderboard "$runs" --with-baselines --baseline-blocks space --quiet --out "$out/leaderboard.csv" \
    > "$out/leaderboard.txt"
nasbench-eval compare "$runs" --quiet --out "$out/compare.csv" > "$out/compare.txt"
nasbench-eval plot "$runs" --quiet --kind param-free --kind hessian --kind seeds --kind anytime \
    --format png,pdf --out "$out"
nasbench-eval fidelity "$runs" --quiet --out "$out"
python3 studies/nb201_report.py "$out" > "$out/settings.md"
python3 - "$out" "$sweep_s" <<'PY'
import datetime, os, platform, subprocess, sys
import torch
out, sweep_s = sys.argv[1], int(sys.argv[2])
git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()
dirty = git("status", "--porcelain", "--untracked-files=no")
lines = [
    "# How these files were made", "",
    f"- command: `bash studies/nb201.sh {out}` (sweep file `studies/nb201.toml`)",
    f"- commit: `{git('rev-parse', 'HEAD')}`" + (" (with uncommitted changes)" if dirty else " (clean tree)"),
    f"- machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} CPU cores, "
    f"{platform.platform()}; torch {torch.__version__}, Python {platform.python_version()}",
    f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC (report written)",
    f"- wall time of the search commands: {sweep_s // 60} min {sweep_s % 60} s (0 when every run "
    "was already there; measured on a machine shared with other jobs, so it is an upper bound)",
]
open(os.path.join(out, "RUN.md"), "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
