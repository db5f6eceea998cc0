"""Reading run directories into tables: one row per run, or one row per (run, epoch).

A run directory is any directory holding ``summary.json`` (see README, "What a run writes").
Nothing here touches a GPU or a live run: the analysis works on results copied to a laptop.
Errors stay fractions in [0, 1] in these tables, as in the run files; the leaderboard and
the plots turn them into percentages.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..composition import composition_label
from ..config import identity_fields
from ..errors import NasbenchEvalError
from ..rundir import DONE, FAILED, INTERRUPTED, RUNNING, fingerprint

UNFINISHED = (RUNNING, INTERRUPTED, FAILED)
STATUSES = (*DONE, *UNFINISHED)
REQUIRED_SUMMARY_FIELDS = ("run_id", "method", "space", "dataset", "seed", "status")
RUN_COLUMNS = ["run_id", "method", "space", "dataset", "seed", "status", "epochs", "epochs_done",
               "final_test_error", "best_test_error", "final_val_acc",
               "final_param_free_fraction", "wall_time_s", "device", "device_name", "setting",
               "git_commit", "diverged_at_epoch", "stopped_early_at_epoch", "error",
               "eval_status", "eval_test_error", "eval_params_m", "eval_epochs", "path"]
MLFLOW_STORES = ("mlruns", "mlartifacts")  # MLflow's folder names; never searched for runs
IDENTITY_COLUMNS = ["run_id", "method", "space", "dataset", "seed", "status", "path"]
# config fields that say where a run executed, not what it computed (plus the seed): runs that
# agree on everything else share a "setting" and belong in one leaderboard row
# (the run id's execution fields, fast-path ones included: runs made before those existed
# have no such keys)
_ERROR_FIELDS = ("final_test_error", "best_test_error")


class AnalysisError(NasbenchEvalError):
    """Run directories or arguments the analysis cannot use; the message names the path."""


# ----------------------------------------------------------------------------- discovery

def find_run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Every run directory (a directory with ``summary.json``) at or below ``paths``.

    A path may be a run directory, a directory holding run directories at any depth, or a
    ``summary.json`` file. A path that does not exist or holds no run is an error naming it.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found: list[Path] = []
    seen: set[Path] = set()
    given = list(paths)
    if not given:
        raise AnalysisError("no results path given")
    for p in map(Path, given):
        if not p.exists():
            raise AnalysisError(f"{p}: no such file or directory")
        if p.is_file():
            if p.name != "summary.json":
                raise AnalysisError(f"{p}: not a run directory (a run directory holds "
                                    f"summary.json); pass the directory that holds the runs")
            dirs = [p.parent]
        elif (p / "summary.json").is_file():
            dirs = [p]
        else:
            dirs = []
            for root, subdirs, files in os.walk(p):
                # an MLflow store under the results (--mlflow-uri results/mlruns) holds copies
                # of run directories as artifacts: not runs of their own
                subdirs[:] = sorted(d for d in subdirs
                                    if not d.startswith(".") and d not in MLFLOW_STORES)
                if "summary.json" in files:
                    dirs.append(Path(root))
                    subdirs[:] = []  # a run directory holds no further runs
            if not dirs:
                raise AnalysisError(f"{p}: no run directories found below it (a run directory "
                                    f"holds summary.json, as `nasbench-eval run` writes)")
        for d in dirs:
            key = d.resolve()
            if key not in seen:
                seen.add(key)
                found.append(d)
    return found


def _progress(items: list, progress: bool | None, desc: str):
    show = progress if progress is not None else (len(items) >= 50 and sys.stderr.isatty())
    if not show or len(items) < 2:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="run", file=sys.stderr, leave=False)


# ----------------------------------------------------------------------------- one run

def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise AnalysisError(f"{path}: malformed JSON ({exc})") from None
    except OSError as exc:
        raise AnalysisError(f"{path}: cannot read ({exc.strerror})") from None


def _number(value: Any, path: Path, name: str) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnalysisError(f"{path}: field '{name}' should be a number, got {value!r}")
    return float(value)


def setting_hash(config: dict[str, Any]) -> str:
    """Hash of a run's config without its seed and execution fields (8 hex digits)."""
    return fingerprint(identity_fields(config, drop=frozenset({"seed"})))


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """One run directory as a flat dict (the columns of :func:`load_runs`)."""
    run_dir = Path(run_dir)
    spath = run_dir / "summary.json"
    if not spath.is_file():
        raise AnalysisError(f"{run_dir}: not a run directory (no summary.json)")
    s = _read_json(spath)
    if not isinstance(s, dict):
        raise AnalysisError(f"{spath}: expected a JSON object, got {type(s).__name__}")
    missing = [f for f in REQUIRED_SUMMARY_FIELDS if s.get(f) in (None, "")]
    if missing:
        raise AnalysisError(f"{spath}: missing field(s) {', '.join(missing)}")
    if s["status"] not in STATUSES:
        raise AnalysisError(f"{spath}: field 'status' is '{s['status']}'; expected one of "
                            f"{', '.join(STATUSES)}")
    row: dict[str, Any] = {k: s[k] for k in ("run_id", "method", "space", "dataset", "status")}
    try:
        row["seed"] = int(s["seed"])
    except (TypeError, ValueError):
        raise AnalysisError(f"{spath}: field 'seed' should be an integer, got {s['seed']!r}") from None
    for name in ("epochs", "epochs_done", "final_test_error", "best_test_error", "final_val_acc",
                 "final_param_free_fraction", "wall_time_s", "diverged_at_epoch",
                 "stopped_early_at_epoch"):
        row[name] = _number(s.get(name), spath, name)
    if math.isnan(row["epochs_done"]):
        row["epochs_done"] = 0.0
    for name in _ERROR_FIELDS + ("final_val_acc", "final_param_free_fraction"):
        v = row[name]
        if not math.isnan(v) and not 0.0 <= v <= 1.0:
            raise AnalysisError(f"{spath}: field '{name}' is {v}, outside [0, 1] (run files "
                                f"store errors and fractions in [0, 1], not percent)")
    row["error"] = s.get("error")
    _check_metrics_rows(run_dir, row["epochs_done"])
    cpath = run_dir / "config.json"
    device, device_name, setting, commit = "unknown", "unknown", "unknown", None
    if cpath.is_file():
        c = _read_json(cpath)
        env = c.get("environment") or {}
        dev = str(env.get("device") or "unknown")
        device = dev.split(":", 1)[0]
        device_name = str(env.get("device_name") or device)
        commit = env.get("git_commit")
        if isinstance(c.get("config"), dict):
            setting = setting_hash(c["config"])
            # a composition the user changed (--perturb, --partial-channels, --edge-norm) is
            # its own leaderboard group: drnas+perturb=adversarial
            opts = c["config"].get("method_options")
            row["method"] = composition_label(row["method"],
                                              opts if isinstance(opts, dict) else None)
            if math.isnan(row["epochs"]) and isinstance(c["config"].get("epochs"), int):
                row["epochs"] = float(c["config"]["epochs"])
    row.update(device=device, device_name=device_name, setting=setting, git_commit=commit,
               path=str(run_dir))
    row.update(eval_status=None, eval_test_error=math.nan, eval_params_m=math.nan,
               eval_epochs=math.nan)
    epath = run_dir / "evaluation.json"  # the evaluation stage's retrained architecture
    if epath.is_file():
        ev = _read_json(epath)
        if not isinstance(ev, dict):
            raise AnalysisError(f"{epath}: expected a JSON object, got {type(ev).__name__}")
        row["eval_status"] = ev.get("status")
        row["eval_test_error"] = _number(ev.get("final_test_error"), epath, "final_test_error")
        row["eval_params_m"] = _number(ev.get("params_M"), epath, "params_M")
        row["eval_epochs"] = _number(ev.get("epochs"), epath, "epochs")
        v = row["eval_test_error"]
        if not math.isnan(v) and not 0.0 <= v <= 1.0:
            raise AnalysisError(f"{epath}: field 'final_test_error' is {v}, outside [0, 1]")
    return row


# ----------------------------------------------------------------------------- tables

def load_runs(paths: Iterable[str | Path], *, on_error: str = "raise",
              progress: bool | None = None) -> pd.DataFrame:
    """One row per run directory found (recursively) under ``paths``.

    Columns: ``run_id, method, space, dataset, seed, status, epochs, epochs_done,
    final_test_error, best_test_error, final_val_acc, final_param_free_fraction, wall_time_s,
    device, device_name, setting, git_commit, diverged_at_epoch, stopped_early_at_epoch, error,
    eval_status, eval_test_error, eval_params_m, eval_epochs, path`` (``eval_*``: the run's
    ``evaluation.json`` from ``nasbench-eval evaluate``, when there is one). Errors are
    fractions in [0, 1]. ``on_error="raise"`` (default) stops at the first malformed run
    directory with a message naming it; ``"warn"`` skips such directories with one warning
    listing them (also kept in ``df.attrs["skipped"]``). The same run id found twice (results
    copied into two places) keeps the copy with the most finished epochs, with a warning.
    ``progress``: a progress bar on stderr (default: when 50 or more runs and a terminal).
    """
    if on_error not in ("raise", "warn"):
        raise ValueError("on_error must be 'raise' or 'warn'")
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    dirs = find_run_dirs(paths)
    rows, skipped = [], []
    for d in _progress(dirs, progress, "reading runs"):
        try:
            rows.append(read_run(d))
        except AnalysisError as exc:
            if on_error == "raise":
                raise
            skipped.append(str(exc))
    if skipped:
        warnings.warn(f"skipped {len(skipped)} malformed run director"
                      f"{'y' if len(skipped) == 1 else 'ies'}:\n  " + "\n  ".join(skipped),
                      stacklevel=2)
    if not rows:
        raise AnalysisError(f"no readable run directories under {', '.join(map(str, paths))}")
    df = pd.DataFrame(rows, columns=RUN_COLUMNS)
    dup = df["run_id"].duplicated(keep=False)
    if dup.any():
        names = sorted(df.loc[dup, "run_id"].unique())
        warnings.warn(f"{len(names)} run id(s) found in more than one directory (kept the copy "
                      f"with the most epochs done): {', '.join(names[:5])}"
                      + (" ..." if len(names) > 5 else ""), stacklevel=2)
        df = (df.sort_values(["run_id", "epochs_done"], ascending=[True, False], kind="stable")
                .drop_duplicates("run_id", keep="first"))
    df = df.sort_values(["space", "dataset", "method", "seed", "run_id"], kind="stable")
    df = df.reset_index(drop=True)
    df.attrs["skipped"] = skipped
    return df


def mixed_settings(runs: pd.DataFrame) -> list[str]:
    """The (method, space, dataset) groups of a runs table whose runs differ in setting
    (epochs, layers, method options, a data loader that draws other batches, ...), described
    for a warning: ``"darts on s3/digits (2 settings)"``. Such a group's runs are not seeds of
    one experiment; the leaderboard and the plots say so."""
    if "setting" not in runs.columns or runs.empty:
        return []
    n = runs.groupby(["method", "space", "dataset"], sort=True)["setting"].nunique()
    return [f"{m} on {s}/{d} ({k} settings)" for (m, s, d), k in n.items() if k > 1]


def _as_runs(paths_or_runs: Iterable[str | Path] | pd.DataFrame, **kw: Any) -> pd.DataFrame:
    if isinstance(paths_or_runs, pd.DataFrame):
        return paths_or_runs
    return load_runs(paths_or_runs, **kw)


def _check_metrics_text(path: Path, text: str) -> None:
    """Every row of a metrics.csv must be whole: as many fields as the header, numbers (or
    empty: a column a method adds from some epoch on) in every cell, and a line end after the
    last row (``write_metrics`` ends every row with one, so a file cut short, e.g. by a copy
    interrupted mid-write, shows as a last row without it). A row that is not is an
    :class:`AnalysisError` naming the file and the line: a truncated last row otherwise
    reads as a smaller number or a missing epoch, silently."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith(("\n", "\r")):
        raise AnalysisError(f"{path}, line {len(lines)}: the last row has no line end (the file "
                            f"was cut short, e.g. by an interrupted copy); copy it again from "
                            f"where the run was made")
    rows = list(csv.reader(lines))
    header = rows[0] if rows else []
    # text columns: by name, or holding text in every row that has a value (at least two),
    # so that one damaged cell of a numeric column is never taken for a text column
    textual = set()
    for i, col in enumerate(header):
        cells = [r[i].strip() for r in rows[1:] if len(r) == len(header) and r[i].strip()]
        if col.endswith(TEXT_SUFFIXES) or (len(cells) >= 2
                                           and not any(_is_number(c) for c in cells)):
            textual.add(col)
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise AnalysisError(f"{path}, line {n}: {len(row)} fields where the header has "
                                f"{len(header)} (a truncated or damaged row)")
        for col, cell in zip(header, row):
            if cell.strip() == "" or col in textual:
                continue
            if not _is_number(cell):
                raise AnalysisError(f"{path}, line {n}: column '{col}' holds {cell!r}, not a "
                                    f"number (a damaged row)")


TEXT_SUFFIXES = ("_arch", "_hash", "_protocol", "_spec")
"""metrics.csv columns that hold text (an architecture string, a table hash, the table
protocol an oracle answered from); a column with text in every row is text too."""


def _is_number(cell: str) -> bool:
    """A numeric metrics cell: a float, or a flag written by Python (``True``/``False``)."""
    if cell in ("True", "False"):
        return True
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_metrics(run_dir: str | Path) -> pd.DataFrame:
    """``metrics.csv`` of one run (empty frame when the run has no finished epoch yet); a row
    that does not parse is an :class:`AnalysisError` naming the file and the line."""
    path = Path(run_dir) / "metrics.csv"
    if not path.is_file():
        return pd.DataFrame(columns=["epoch"])
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise AnalysisError(f"{path}: cannot read ({exc})") from None
    _check_metrics_text(path, text)
    try:
        m = pd.read_csv(io.StringIO(text))
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise AnalysisError(f"{path}: malformed CSV ({exc})") from None
    if "epoch" not in m.columns:
        raise AnalysisError(f"{path}: no 'epoch' column; columns are {', '.join(m.columns)}")
    for col in m.columns:
        if col != "epoch" and m[col].dtype == object:
            m[col] = pd.to_numeric(m[col], errors="coerce")
    return m


def _check_metrics_rows(run_dir: Path, epochs_done: float) -> None:
    """metrics.csv parses and holds every epoch summary.json counts as done (it is written
    before the summary, so it may hold one more; fewer means rows were lost)."""
    m = read_metrics(run_dir)
    if m.empty:
        return  # no metrics.csv: load_metrics names it when metrics are needed
    have = set(pd.to_numeric(m["epoch"], errors="coerce").dropna().astype(int))
    lost = [e for e in range(int(epochs_done)) if e not in have]
    if lost:
        raise AnalysisError(f"{run_dir / 'metrics.csv'}: summary.json says {int(epochs_done)} "
                            f"epochs done but there is no row for epoch "
                            f"{', '.join(map(str, lost[:5]))}{' ...' if len(lost) > 5 else ''}")


def load_metrics(paths: Iterable[str | Path] | pd.DataFrame, *, on_error: str = "raise",
                 progress: bool | None = None) -> pd.DataFrame:
    """Per-epoch rows of every run under ``paths`` (or of the runs of a :func:`load_runs` frame).

    Columns: the run's identity (``run_id, method, space, dataset, seed, status, path``),
    ``epochs_completed`` (= ``epoch`` + 1) and every column of its ``metrics.csv``
    (``anytime_test_error`` a fraction; ``hessian_eig`` NaN on epochs without it).
    A run that says it finished epochs but has no ``metrics.csv`` is an error naming it.
    """
    runs = _as_runs(paths, on_error=on_error, progress=progress)
    frames = []
    for r in _progress(list(runs.itertuples(index=False)), progress, "reading metrics"):
        try:
            m = read_metrics(r.path)
            if m.empty and r.epochs_done > 0:
                raise AnalysisError(f"{r.path}: summary.json says {int(r.epochs_done)} epochs "
                                    f"done but metrics.csv is missing or empty")
        except AnalysisError as exc:
            if on_error == "raise":
                raise
            warnings.warn(f"skipped the metrics of a run: {exc}", stacklevel=2)
            continue
        if m.empty:
            continue
        for col in reversed(IDENTITY_COLUMNS):
            m.insert(0, col, getattr(r, col))
        m.insert(len(IDENTITY_COLUMNS), "epochs_completed", m["epoch"].astype(int) + 1)
        frames.append(m)
    if not frames:
        return pd.DataFrame(columns=IDENTITY_COLUMNS + ["epochs_completed", "epoch",
                                                        "anytime_test_error"])
    out = pd.concat(frames, ignore_index=True, sort=False)
    if "hessian_eig" in out.columns:
        out["hessian_eig"] = pd.to_numeric(out["hessian_eig"], errors="coerce")
    return out


# ----------------------------------------------------------------------------- metrics

_ANYTIME = re.compile(r"^anytime-at-(\d+)$")


def parse_metric(metric: str) -> tuple[str, int | None]:
    """``"final"``, ``"best"``, ``"evaluated"`` or ``"anytime-at-E"`` -> (kind, E)."""
    if metric in ("final", "best", "evaluated"):
        return metric, None
    m = _ANYTIME.match(metric)
    if m and int(m.group(1)) >= 1:
        return "anytime", int(m.group(1))
    raise AnalysisError(f"unknown metric '{metric}'; use final, best, evaluated or anytime-at-E "
                        f"(E = a number of finished search epochs, e.g. anytime-at-25)")


def describe_metric(metric: str) -> str:
    kind, e = parse_metric(metric)
    return {"final": "anytime test error of the final architecture (finished runs)",
            "best": "lowest anytime test error over the epochs (finished runs)",
            "anytime": f"anytime test error after {e} search epochs (every run that got there)",
            "evaluated": "test error of the final architecture retrained from scratch "
                         "(evaluation.json, finished evaluations)",
            }[kind]


def metric_values(runs: pd.DataFrame, metric: str = "final") -> pd.DataFrame:
    """Per run: the chosen test ``error`` (fraction) and the ``param_free`` fraction of the
    normal cell of the same architecture; NaN where the run provides no value.

    ``final``: the last epoch's anytime error, finished runs only. ``best``: the lowest anytime
    error over the epochs, finished runs only (its architecture's param-free fraction from
    metrics.csv). ``anytime-at-E``: the error after E search epochs, from every run that
    completed E epochs whatever its status (a later divergence does not undo epoch E).
    Epochs a run left unscored (``--oracle-every k``: every k-th epoch and the last are
    scored) give no value: ``best`` takes the lowest score, ``anytime-at-E`` is NaN for such
    a run, with a warning that names the epoch.
    """
    kind, e = parse_metric(metric)
    unscored = 0
    err = pd.Series(np.nan, index=runs.index, dtype=float)
    pf = pd.Series(np.nan, index=runs.index, dtype=float)
    finished = runs["status"] == "finished"
    if kind == "final":
        err[finished] = runs.loc[finished, "final_test_error"]
        pf[finished] = runs.loc[finished, "final_param_free_fraction"]
        return pd.DataFrame({"error": err, "param_free": pf})
    if kind == "evaluated":
        if "eval_status" not in runs.columns:
            raise AnalysisError("the runs table has no evaluation columns; make it with "
                                "load_runs()")
        done = runs["eval_status"] == "finished"
        err[done] = runs.loc[done, "eval_test_error"]
        pf[done] = runs.loc[done, "final_param_free_fraction"]
        return pd.DataFrame({"error": err, "param_free": pf})
    for i, r in runs.iterrows():
        if kind == "best" and not finished[i]:
            continue
        if kind == "anytime" and r["epochs_done"] < e:
            continue
        m = read_metrics(r["path"])
        if "anytime_test_error" not in m.columns or m.empty:
            if kind == "best":
                err[i], pf[i] = r["best_test_error"], r["final_param_free_fraction"]
                continue
            raise AnalysisError(f"{r['path']}: metrics.csv lacks anytime_test_error, needed "
                                f"for metric {metric}")
        if kind == "best":
            j = m["anytime_test_error"].idxmin()
        else:
            hit = m.index[m["epoch"] == e - 1]
            if len(hit) == 0:
                raise AnalysisError(f"{r['path']}: summary.json says {int(r['epochs_done'])} "
                                    f"epochs done but metrics.csv has no epoch {e - 1} row")
            j = hit[-1]
            unscored += int(pd.isna(m.at[j, "anytime_test_error"]))
        err[i] = m.at[j, "anytime_test_error"]
        pf[i] = m.at[j, "param_free_normal"] if "param_free_normal" in m.columns else np.nan
    if unscored:
        warnings.warn(f"{unscored} run(s) reached epoch {e} but did not score it (not scored: "
                      f"they ran with --oracle-every); they give no value for {metric}",
                      stacklevel=2)
    return pd.DataFrame({"error": err, "param_free": pf})
