"""How well does each anytime oracle rank DARTS-cell architectures? (issue 22)

For each (space, dataset) of the study, a fixed set of genotypes (derived cells of real short
searches and random cells of the space) is scored by

* ``reference``: the ``train`` oracle at a long budget (the score the others are judged by);
* ``oneshot``: the one-shot oracle with the supernet of a real search (the same supernet for
  every genotype; BN re-estimated on 5 batches, as the fidelity study's runs);
* ``train-*``: the ``train`` oracle at short budgets;

and Kendall's tau / Spearman's rho of each against the reference are reported with
percentile-bootstrap intervals over genotypes, beside each oracle's cost per genotype. It then
rescores the final genotypes of the committed fidelity study (results/fidelity-digits) on S3.

Two studies (``--dataset``), each with its own output folder and fixed settings (:data:`STUDIES`):

* ``digits`` (default): ``results/oracle-fidelity/``, the full scikit-learn digits;
* ``fashion-mnist``: ``results/oracle-fidelity-fmnist/``, a reduced Fashion-MNIST that one CPU
  thread can afford (dataset options ``train_subset`` 2,000 / ``test_subset`` 2,000 stratified
  images, ``downsample`` 2 to 14 x 14; they are run settings, in every run id and cache key),
  one darts search per space, and 30 genotypes per space; the oracles' budgets are the
  digits study's, so the two halves differ only in the data.

Every training goes through the train oracle and its cache (``OUT/oracle-cache/train.json``),
so each command is resumable: run it again and it continues where it stopped. Pieces (each
well under 10 minutes of one CPU thread with ``--limit-s``):

    python studies/oracle_fidelity.py [--dataset D] searches              # short searches
    python studies/oracle_fidelity.py [--dataset D] score --limit-s 500   # until "all scored"
    python studies/oracle_fidelity.py [--dataset D] report                # OUT/report.md
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
FIDELITY_RUNS = ROOT / "results" / "fidelity-digits" / "runs"

# the fidelity study's search setting (studies/fidelity.toml): real short searches
SEARCH = dict(epochs=8, layers=3, channels=8, batch_size=16, alpha_lr=3e-3,
              bn_recalibration_batches=5, oracle="oneshot", device="cpu",
              memory_format="contiguous", progress=False)

BUDGETS: dict[str, dict[str, Any]] = {
    "reference": {"train_epochs": 6, "cells": 5, "channels": 16, "batch_size": 64},
    "train-1ep": {"train_epochs": 1, "cells": 3, "channels": 8, "batch_size": 32},
    "train-3ep": {"train_epochs": 3, "cells": 3, "channels": 8, "batch_size": 32},
}
ORDER = ["oneshot", "train-1ep", "train-3ep", "reference"]
"""Scoring order: cheap first, so a stopped study still has every cheap column."""


@dataclass(frozen=True)
class Study:
    """The fixed settings of one study (one dataset)."""

    dataset: str
    out: Path
    searches: dict[str, list[tuple[str, int]]]
    """(method, seed) of the searches run per space; the first one's supernet scores one-shot."""
    n_random: dict[str, int]
    """Random cells per space."""
    fidelity_seeds: tuple[int, ...] | None
    """S3 also gets the final cells of the fidelity study's runs of these seeds (None: all)."""
    dataset_options: dict[str, Any] = field(default_factory=dict)
    own_fidelity: bool = True
    """The fidelity study ran on this dataset: its one-shot scores are a column and its cells
    are rescored by method (otherwise its cells are only more derived cells of real searches)."""
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Budgets scored after the others, while time is left: ``reference-seed1`` (the reference
    with another training seed) measures how far the reference itself ranks reproducibly."""

    @property
    def order(self) -> list[str]:
        return ORDER + list(self.extra)

    def budget(self, name: str) -> dict[str, Any]:
        return {**BUDGETS, **self.extra}[name]


STUDIES = {
    "digits": Study("digits", ROOT / "results" / "oracle-fidelity",
                    {"s3": [("darts", 0)], "darts": [("darts", 0), ("sdarts-adv", 0)]},
                    {"s3": 10, "darts": 16}, None),
    # one CPU thread: ~1 h in all (RUN.md there); S3 30 genotypes = 8 derived cells of its
    # search + 9 digits-searched fidelity cells (seeds 0-2 of each method) + 13 random
    "fashion-mnist": Study("fashion-mnist", ROOT / "results" / "oracle-fidelity-fmnist",
                           {"s3": [("darts", 0)], "darts": [("darts", 0)]},
                           {"s3": 13, "darts": 22}, (0, 1, 2),
                           {"train_subset": 2000, "test_subset": 2000, "downsample": 2},
                           own_fidelity=False,
                           extra={"reference-seed1": {**BUDGETS["reference"], "seed": 1}}),
}
STUDY = STUDIES["digits"]
"""The study of this invocation (``--dataset``)."""
OUT = STUDY.out


def _search_cfg(space: str, method: str, seed: int):
    from nasbench_eval.config import RunConfig

    return RunConfig(method=method, space=space, seed=seed, out=str(OUT / "runs"),
                     dataset=STUDY.dataset, dataset_options=dict(STUDY.dataset_options),
                     **SEARCH)


def cmd_searches(args: argparse.Namespace) -> None:
    """Run the searches and write OUT/genotypes-<space>.json (the study's genotype sets)."""
    from nasbench_eval import run
    from nasbench_eval.spaces import load_space

    for space, searches in STUDY.searches.items():
        genotypes: list[dict[str, Any]] = []
        for method, seed in searches:
            t0 = time.perf_counter()
            run_dir = run(_search_cfg(space, method, seed))
            print(f"{space}: {run_dir.name} ({time.perf_counter() - t0:.0f} s)", flush=True)
            for line in (run_dir / "genotypes.jsonl").read_text().splitlines():
                rec = json.loads(line)
                genotypes.append({"source": f"{method} seed {seed} epoch {rec['epoch'] + 1}",
                                  "genotype": rec["genotype"]})
        if space == "s3":  # the fidelity study's final cells (their own one-shot score too)
            for d in sorted(FIDELITY_RUNS.glob("*-s3-digits-seed*")):
                s = json.loads((d / "summary.json").read_text())
                if STUDY.fidelity_seeds is not None and s["seed"] not in STUDY.fidelity_seeds:
                    continue
                if not STUDY.own_fidelity:
                    genotypes.append({"source": f"fidelity-digits {s['method']} seed {s['seed']}",
                                      "genotype": s["final_genotype"]})
                    continue
                genotypes.append({"source": f"fidelity {s['method']} seed {s['seed']}",
                                  "genotype": s["final_genotype"],
                                  "fidelity_oneshot": s["final_test_error"],
                                  "fidelity_method": s["method"], "fidelity_seed": s["seed"]})
        sp = load_space(space)
        g = torch.Generator().manual_seed(2026)
        for i in range(STUDY.n_random[space]):
            genotypes.append({"source": f"random {i}", "genotype": sp.sample_genotype(g).to_dict()})
        (OUT / f"genotypes-{space}.json").write_text(json.dumps(genotypes, indent=1) + "\n")
        print(f"{space}: {len(genotypes)} genotypes", flush=True)


def _contexts(space: str):
    """(search, space object): the first search of the space rebuilt with its final supernet."""
    from nasbench_eval.rundir import load_checkpoint
    from nasbench_eval.runner import build_search

    method, seed = STUDY.searches[space][0]
    cfg = _search_cfg(space, method, seed)
    search = build_search(cfg)
    run_dir = OUT / "runs" / search.cfg.run_id()  # the resolved config names the run
    search.supernet.load_state_dict(load_checkpoint(run_dir / "checkpoint.pt", "cpu")["supernet"])
    return search


def _score_file(space: str) -> Path:
    return OUT / f"scores-{space}.json"


def cmd_score(args: argparse.Namespace) -> None:
    """Score every genotype with every oracle, cheap ones first, until --limit-s is spent."""
    from nasbench_eval.oracles.oneshot import OneShotOracle
    from nasbench_eval.oracles.train import TrainOracle

    t_start = time.perf_counter()
    searches = {space: _contexts(space) for space in STUDY.searches}
    for budget in STUDY.order:
        for space, search in searches.items():
            items = json.loads((OUT / f"genotypes-{space}.json").read_text())
            path = _score_file(space)
            scores: dict[str, dict[str, Any]] = (json.loads(path.read_text()) if path.exists()
                                                 else {})
            column = scores.setdefault(budget, {})
            for i, item in enumerate(items):
                if str(i) in column:
                    continue
                if time.perf_counter() - t_start > args.limit_s:
                    path.write_text(json.dumps(scores, indent=1) + "\n")
                    print(f"time limit reached; rerun to continue ({space} {budget} {i})")
                    return
                g = search.space.genotype_from_dict(item["genotype"])
                if budget == "oneshot":
                    t0 = time.perf_counter()
                    err = OneShotOracle().score(g, search.oracle_context())["test_error"]
                    column[str(i)] = {"test_error": err, "cost_s": time.perf_counter() - t0}
                else:
                    cfg = replace(search.cfg, oracle="train", oracle_options=STUDY.budget(budget),
                                  out=str(OUT))
                    ctx = replace(search.oracle_context(), cfg=cfg)
                    r = TrainOracle().score(g, ctx)
                    column[str(i)] = {"test_error": r["test_error"], "cost_s": r["train_time_s"]}
                print(f"{space} {budget} {i + 1}/{len(items)}: {column[str(i)]['test_error']:.4f}"
                      f" ({column[str(i)]['cost_s']:.1f} s)", flush=True)
                path.write_text(json.dumps(scores, indent=1) + "\n")
    print("all scored")


# ----------------------------------------------------------------------------- report

def _bootstrap(x: np.ndarray, y: np.ndarray, n_boot: int = 2000, seed: int = 0
               ) -> dict[str, float]:
    from scipy import stats

    tau = stats.kendalltau(x, y).statistic
    rho = stats.spearmanr(x, y).statistic
    rng = np.random.default_rng(seed)
    taus, rhos = [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        if np.ptp(x[idx]) == 0 or np.ptp(y[idx]) == 0:
            continue
        taus.append(stats.kendalltau(x[idx], y[idx]).statistic)
        rhos.append(stats.spearmanr(x[idx], y[idx]).statistic)
    q = lambda v: np.nanpercentile(v, [2.5, 97.5])  # noqa: E731
    (tl, th), (rl, rh) = q(taus), q(rhos)
    return {"tau": tau, "tau_lo": tl, "tau_hi": th, "rho": rho, "rho_lo": rl, "rho_hi": rh}


def _fmt(r: dict[str, float], key: str) -> str:
    return f"{r[key]:+.2f} [{r[key + '_lo']:+.2f}, {r[key + '_hi']:+.2f}]"


def _unique(items: list[dict[str, Any]]) -> set[str]:
    """Indices (as score keys) of the first occurrence of each distinct genotype: a cell that
    several searches found counts once in the correlations."""
    seen: dict[str, str] = {}
    for i, it in enumerate(items):
        seen.setdefault(json.dumps(it["genotype"], sort_keys=True), str(i))
    return set(seen.values())


def cmd_report(args: argparse.Namespace) -> None:
    rows, lines = [], []
    for space in STUDY.searches:
        items = json.loads((OUT / f"genotypes-{space}.json").read_text())
        scores = json.loads(_score_file(space).read_text())
        keep = _unique(items)
        ref = {k: v for k, v in scores.get("reference", {}).items() if k in keep}
        for name in [b for b in STUDY.order if b != "reference"] + ["fidelity-oneshot"]:
            if name == "fidelity-oneshot":
                pairs = [(it["fidelity_oneshot"], ref[str(i)]["test_error"], 0.0)
                         for i, it in enumerate(items) if "fidelity_oneshot" in it and str(i) in ref]
            else:
                col = scores.get(name, {})
                pairs = [(col[k]["test_error"], ref[k]["test_error"], col[k]["cost_s"])
                         for k in col if k in ref]
            if len(pairs) < 5:
                continue
            x, y, c = (np.array(v, dtype=float) for v in zip(*pairs))
            r = _bootstrap(x, y)
            rows.append({"space": space, "dataset": STUDY.dataset, "oracle": name, "n": len(x),
                         **{k: round(float(v), 4) for k, v in r.items()},
                         "cost_s_mean": round(float(c.mean()), 2),
                         "error_mean": round(float(x.mean()), 4)})
        ref_costs = [v["cost_s"] for v in ref.values()]
        ref_err = [v["test_error"] for v in ref.values()]
        if ref_costs:
            rows.append({"space": space, "dataset": STUDY.dataset, "oracle": "reference",
                         "n": len(ref_costs), "cost_s_mean": round(float(np.mean(ref_costs)), 2),
                         "error_mean": round(float(np.mean(ref_err)), 4)})
    cols = ["space", "dataset", "oracle", "n", "tau", "tau_lo", "tau_hi", "rho", "rho_lo",
            "rho_hi", "cost_s_mean", "error_mean"]
    with open(OUT / "rank-correlation.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    if STUDY.dataset_options:
        lines += [f"Data: {STUDY.dataset} with dataset options {STUDY.dataset_options} "
                  f"(see RUN.md). Correlations against `reference` over distinct genotypes; "
                  f"`reference-seed1` is the reference trained with another seed.", ""]
    lines += ["| space | oracle | n | Kendall tau [95% CI] | Spearman rho [95% CI] | "
              "cost s / genotype | mean error |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "tau" in r:
            lines.append(f"| {r['space']} | {r['oracle']} | {r['n']} | {_fmt(r, 'tau')} | "
                         f"{_fmt(r, 'rho')} | {r['cost_s_mean']:.2f} | {r['error_mean']:.3f} |")
        else:
            lines.append(f"| {r['space']} | reference | {r['n']} | - | - | "
                         f"{r['cost_s_mean']:.2f} | {r['error_mean']:.3f} |")
    if STUDY.own_fidelity:
        lines += ["", *rescore_lines(args.chosen)]
    (OUT / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def rescore_lines(chosen: str) -> list[str]:
    """The fidelity study's S3 final cells by method, with the one-shot score of their own
    search, the chosen oracle and the reference; Wilcoxon by seed, Holm over the pairs."""
    from scipy import stats

    items = json.loads((OUT / "genotypes-s3.json").read_text())
    scores = json.loads(_score_file("s3").read_text())
    by: dict[str, dict[str, dict[int, float]]] = {}
    for i, it in enumerate(items):
        if "fidelity_method" not in it:
            continue
        for col, value in (("oneshot (own supernet)", it["fidelity_oneshot"]),
                           (chosen, scores.get(chosen, {}).get(str(i), {}).get("test_error")),
                           ("reference", scores.get("reference", {}).get(str(i), {})
                            .get("test_error"))):
            if value is not None:
                by.setdefault(col, {}).setdefault(it["fidelity_method"], {})[it["fidelity_seed"]] = value
    out = ["| S3 final cells scored by | darts | sdarts-rs | sdarts-adv | p darts vs sdarts-adv "
           "(Holm) | p sdarts-rs vs sdarts-adv (Holm) |", "|---|---|---|---|---|---|"]
    csv_rows = []
    for col, methods in by.items():
        cells, ps = [], []
        for m in ("darts", "sdarts-rs", "sdarts-adv"):
            v = np.array(list(methods.get(m, {}).values())) * 100
            cells.append(f"{v.mean():.1f} ± {v.std(ddof=1):.1f} (n={len(v)})" if len(v) > 1 else "-")
        for a in ("darts", "sdarts-rs"):
            common = sorted(set(methods.get(a, {})) & set(methods.get("sdarts-adv", {})))
            if len(common) < 5:
                ps.append(float("nan"))
                continue
            x = [methods[a][s] for s in common]
            y = [methods["sdarts-adv"][s] for s in common]
            ps.append(float(stats.wilcoxon(x, y).pvalue) if x != y else 1.0)
        holm = _holm(ps)
        out.append(f"| {col} | {' | '.join(cells)} | {holm[0]:.3g} | {holm[1]:.3g} |")
        csv_rows.append({"scored_by": col, "p_darts_vs_sdarts_adv_holm": holm[0],
                         "p_sdarts_rs_vs_sdarts_adv_holm": holm[1],
                         **{f"{m}_mean_pct": float(np.mean(list(methods.get(m, {}).values()))) * 100
                            for m in ("darts", "sdarts-rs", "sdarts-adv") if methods.get(m)}})
    if csv_rows:
        with open(OUT / "rescore-fidelity-s3.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(csv_rows[0]))
            w.writeheader()
            w.writerows(csv_rows)
    return out


def _holm(ps: list[float]) -> list[float]:
    order = sorted(range(len(ps)), key=lambda i: (np.isnan(ps[i]), ps[i]))
    m = sum(not np.isnan(p) for p in ps)
    out, running = [float("nan")] * len(ps), 0.0
    for rank, i in enumerate(order):
        if np.isnan(ps[i]):
            continue
        running = max(running, min(1.0, (m - rank) * ps[i]))
        out[i] = running
    return out


def main(argv: list[str] | None = None) -> None:
    global STUDY, OUT
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=sorted(STUDIES), default="digits",
                   help="which study (its data, genotypes and output folder)")
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("searches")
    s = sub.add_parser("score")
    s.add_argument("--limit-s", type=float, default=500.0)
    r = sub.add_parser("report")
    r.add_argument("--chosen", default="train-3ep", help="the oracle the rescoring uses")
    args = p.parse_args(argv)
    STUDY = STUDIES[args.dataset]
    OUT = STUDY.out
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    {"searches": cmd_searches, "score": cmd_score, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
