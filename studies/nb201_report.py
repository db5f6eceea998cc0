"""Per-run table of the NAS-Bench-201 study (issue 21): every setting tried and every run of
the main sweep, with the collapse numbers and the anytime CIFAR-10 accuracy of the offline
table. Reads only the run directories (no torch): ``python studies/nb201_report.py OUT``.
"""
from __future__ import annotations

import csv
import json
import sys
from pathlib import Path


def _f(row: dict, key: str) -> float | None:
    v = row.get(key, "")
    try:
        return float(v)
    except ValueError:
        return None


def summarise(run_dir: Path) -> dict | None:
    metrics, config = run_dir / "metrics.csv", run_dir / "config.json"
    if not (metrics.is_file() and config.is_file()):
        return None
    cfg = json.loads(config.read_text())["config"]
    rows = list(csv.DictReader(metrics.open()))
    if not rows:
        return None
    pf = [_f(r, "param_free_normal") for r in rows]
    acc = [_f(r, "oracle_cifar10_test_acc") for r in rows]
    eig = [(int(r["epoch"]), _f(r, "hessian_eig")) for r in rows
           if _f(r, "hessian_eig") is not None]
    return {
        "run": run_dir.name, "method": cfg["method"], "seed": cfg["seed"],
        "N": f"{cfg['layers']} ({cfg['layers'] // 3}/stage)" if cfg["layers"] % 3 == 0
        else str(cfg["layers"]),
        "epochs": f"{len(rows)}/{cfg['epochs']}",
        "pf_first": pf[0], "pf_max": max(p for p in pf if p is not None), "pf_final": pf[-1],
        "skip_final": rows[-1].get("skip_connections", ""),
        "acc_first": acc[0], "acc_final": acc[-1],
        "acc_min": min((a for a in acc if a is not None), default=None),
        "eig": " ".join(f"{e}:{v:.3g}" for e, v in eig),
        "val_acc_final": _f(rows[-1], "val_acc"),
        "cell": rows[-1].get("nb201_arch", ""),
    }


def fmt(v: object, nd: int = 2) -> str:
    return f"{v:.{nd}f}" if isinstance(v, float) else ("" if v is None else str(v))


def table(rows: list[dict]) -> list[str]:
    head = ("run", "method", "seed", "layers", "epochs", "param-free first/max/final",
            "skips final", "CIFAR-10 acc (offline) first/min/final", "lambda_max (epoch:value)",
            "search val acc", "final cell")
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        out.append("| " + " | ".join([
            r["run"], r["method"], str(r["seed"]), r["N"], r["epochs"],
            f"{fmt(r['pf_first'])} / {fmt(r['pf_max'])} / {fmt(r['pf_final'])}",
            str(r["skip_final"]),
            f"{fmt(r['acc_first'])} / {fmt(r['acc_min'])} / {fmt(r['acc_final'])}",
            r["eig"], fmt(r["val_acc_final"], 3), f"`{r['cell']}`"]) + " |")
    return out


def main(out: str) -> None:
    root = Path(out)
    explore = [s for d in sorted((root / "explore").glob("*")) if (s := summarise(d))]
    main_runs = [s for d in sorted((root / "runs").glob("*")) if (s := summarise(d))]
    lines = ["# NAS-Bench-201 study: every run", "",
             "Settings tried with first-order DARTS (seed 0): N = 1 and N = 5 cells per stage "
             "below; N = 2 is seed 0 of the main sweep (second table).", ""]
    lines += table([r for r in explore if r["method"] == "darts"])
    lines += ["", "Main sweep (studies/nb201.toml): darts vs sdarts-adv, N = 2, 16 channels.", ""]
    lines += table(sorted(main_runs, key=lambda r: (r["method"], r["seed"])))
    print("\n".join(lines))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results/nb201-digits")
