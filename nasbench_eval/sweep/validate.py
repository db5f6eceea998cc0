"""Checking a sweep grid against the registries, before anything runs: every name, setting,
method option (by the method's option schema) and method/space pair, all problems at once."""
from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

from ..config import ConfigError, RunConfig, parse_log_to
from ..errors import NasbenchEvalError, did_you_mean
from ..options import OptionError, resolve_given
from ..rundir import fingerprint
from .spec import OWN_FIELDS, SETTING_FIELDS, Cell, SweepError, SweepSpec

_FIELD_TYPES = {f.name: str(f.type) for f in fields(RunConfig)}


def _setting_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be the RunConfig setting ``name`` (None: it can)."""
    ann = _FIELD_TYPES[name]
    if value is None:
        return None if "None" in ann else "must be given a value"
    base = ann.split("|")[0].strip()
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    checks = {
        "bool": (isinstance(value, bool), "true or false"),
        "int": (isinstance(value, int) and not isinstance(value, bool), "an integer"),
        "float": (number, "a number"),
        "str": (isinstance(value, str), "a string"),
    }
    if base in checks:
        ok, what = checks[base]
    elif base.startswith("tuple"):
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value))
        what = "a pair of numbers"
    elif base.startswith("dict"):
        ok, what = isinstance(value, dict), "a table of options"
    else:  # pragma: no cover - a field type this check does not know
        ok, what = True, ""
    if not ok:
        return f"expected {what}, got {value!r}"
    try:
        RunConfig(**{name: value})
    except ConfigError as exc:  # named by where it came from (the caller's prefix)
        return exc.problem
    except (ValueError, TypeError) as exc:
        return str(exc)
    return None


def validate(spec: SweepSpec) -> list[Cell]:
    """Check every name, setting, option and method/space pair; return the grid's cells.

    Raises :class:`SweepError` listing every problem (each naming the offending entry), so a
    bad grid fails before anything is created.
    """
    from ..data import DATASETS
    from ..errors import unknown
    from ..methods import method_class
    from ..oracles import create_oracle
    from ..resolve import resolve_config
    from ..sinks import check_sinks
    from ..spaces import load_space

    problems: list[str] = list(spec.invalid.values())
    for key in ("methods", "spaces"):
        if not getattr(spec, key) and key not in spec.invalid:
            problems.append(f"{spec.where(key)}: missing; name at least one "
                            f"(--{key} a,b or '{key}' in a sweep file)")
    classes: dict[str, type] = _load_each(spec.methods, spec.where("methods"), method_class,
                                          problems)
    spaces: dict[str, Any] = _load_each(spec.spaces, spec.where("spaces"), load_space, problems)
    for d in spec.datasets:
        if d not in DATASETS:  # checked by name: loading would download
            problems.append(f"{spec.where('datasets')}: {unknown('dataset', d, DATASETS)}")
    for key, value in spec.settings.items():
        if key not in SETTING_FIELDS:
            why = ("is set by the grid, use "
                   f"{'options' if key == 'method_options' else key + 's'}"
                   if key in OWN_FIELDS - {"out", "progress"} else
                   f"unknown setting; valid settings: {', '.join(SETTING_FIELDS)}"
                   + did_you_mean(key, SETTING_FIELDS))
            problems.append(f"{spec.where(key)}: {why}")
        elif (why := _setting_problem(key, value)) is not None:
            problems.append(f"{spec.where(key)}: {why}")
    if "log_to" in spec.settings:  # a misspelt sink fails the grid, as the runner would
        try:
            check_sinks(parse_log_to(spec.settings["log_to"]))
        except (NasbenchEvalError, ValueError) as exc:
            problems.append(f"{spec.where('log_to')}: {exc}")
    if isinstance(spec.settings.get("oracle"), str) and spec.settings["oracle"] != "auto":
        try:  # auto: resolved per cell below, its options checked there
            oracle = create_oracle(spec.settings["oracle"])
            given = spec.settings.get("oracle_options")
            if isinstance(given, dict):  # checked before anything runs, as the runner does
                type(oracle).resolve(given)
        except NasbenchEvalError as exc:
            problems.append(f"{spec.where('oracle')}: {exc}")
    options = _method_options(spec, classes, problems)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. msr's note on dropped ops: shown when it runs
        for m, cls in classes.items():
            for s, space in spaces.items():
                try:
                    cls().adapt_space(space)
                except NasbenchEvalError as exc:
                    problems.append(f"method '{m}' does not apply to space '{s}': {exc}")
    _raise_problems(problems)

    cells = []
    for i, (m, s, d, seed) in enumerate(itertools.product(spec.methods, spec.spaces,
                                                           spec.datasets, spec.seeds)):
        opts = options[m]
        try:
            cfg = resolve_config(RunConfig(method=m, space=s, dataset=d, seed=seed,
                                           method_options=opts, out=spec.out, progress=False,
                                           **spec.settings))
        except (ValueError, TypeError) as exc:  # pragma: no cover - caught per setting above
            raise SweepError(f"invalid sweep grid: {exc}") from None
        cells.append(Cell(i, cfg))
    if spec.settings.get("oracle", "auto") == "auto" and spec.settings.get("oracle_options"):
        for name in sorted({c.config.oracle for c in cells}):
            try:  # the oracle each cell's auto chose must take the options
                create_oracle(name).resolve(spec.settings["oracle_options"])
            except NasbenchEvalError as exc:
                problems.append(f"{spec.where('oracle_options')}: --oracle auto chose "
                                f"'{name}' for some runs: {exc}")
        _raise_problems(problems)
    return cells


def _raise_problems(problems: list[str]) -> None:
    """One :class:`SweepError` listing every problem of the grid (nothing when none)."""
    if problems:
        head = ("invalid sweep grid: " if len(problems) == 1 else
                f"invalid sweep grid ({len(problems)} problems):\n  - ")
        raise SweepError(head + "\n  - ".join(problems))


def _load_each(names: Iterable[str], where: str, load: Callable[[str], Any],
               problems: list[str]) -> dict[str, Any]:
    """``{name: load(name)}`` over the names of one grid axis; a name that fails is a problem
    (prefixed with ``where`` it came from) instead of an error, so all are reported at once."""
    loaded: dict[str, Any] = {}
    for name in names:
        try:
            loaded[name] = load(name)
        except NasbenchEvalError as exc:
            problems.append(f"{where}: {exc}")
    return loaded


def sweep_id(spec: SweepSpec, cells: Iterable[Cell]) -> str:
    """``<name>-<hash of the cells' run ids>``: the same grid always has the same id."""
    run_ids = "\n".join(sorted(c.run_id for c in cells))
    return f"{spec.name}-{fingerprint(run_ids)}"


def _method_options(spec: SweepSpec, classes: dict[str, type],
                    problems: list[str]) -> dict[str, dict[str, Any]]:
    """Each method's share of the grid's options, parsed by its option schema.

    An option goes to the methods that declare it, and only to them (a method without it
    keeps the run id it has without it). A value a method cannot use, and an option no method
    of the grid declares, are appended to ``problems``."""
    for opt in spec.options:
        if classes and not any(opt in cls.options for cls in classes.values()):
            offered = sorted({o for cls in classes.values() for o in cls.options})
            problems.append(
                f"{spec.where('options')}: option '{opt}' belongs to no method of this sweep "
                f"({', '.join(classes)}); their options: {', '.join(offered) or '(none)'}")
    out: dict[str, dict[str, Any]] = {}
    for m, cls in classes.items():
        out[m] = {}
        for opt, value in spec.options.items():
            if opt not in cls.options:
                continue
            try:
                out[m].update(resolve_given(f"method '{m}'", cls.options, {opt: value}))
            except OptionError as exc:
                why = f"{spec.where('options')}: option '{opt}': {exc}"
                if why not in problems:  # the same value refused by two methods: once
                    problems.append(why)
        used = cls.options_in_use(out[m])  # e.g. no attack settings for darts without one
        out[m] = {k: v for k, v in out[m].items() if k in used}
    return out
