"""What a sweep runs: the grid (:class:`SweepSpec`), its cells and the sweep files it is read from.

Plain data and parsing only: nothing here imports torch, a method or a space. Checking the grid
against the registries is :mod:`.validate`; running it is :mod:`.driver`.
"""
from __future__ import annotations

import datetime as _dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..config import DEFAULT_OUT, RunConfig
from ..errors import NasbenchEvalError, did_you_mean

GRID_KEYS = ("methods", "spaces", "datasets", "seeds")
# RunConfig fields that a sweep sets itself, per cell or for all of them
OWN_FIELDS = {"method", "space", "dataset", "seed", "method_options", "out", "progress"}
SETTING_FIELDS = tuple(f.name for f in fields(RunConfig) if f.name not in OWN_FIELDS)
EXECUTOR_KEYS = ("executor", "gpus", "ray_address", "cpus_per_run", "workers", "pack")
FILE_KEYS = ("name", *GRID_KEYS, "out", "options", *SETTING_FIELDS, *EXECUTOR_KEYS)


class SweepError(NasbenchEvalError):
    """A sweep grid, sweep file or executor setting is invalid (raised before any run starts)."""


def now() -> str:
    """The current UTC time as the index writes it (ISO 8601, seconds)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- the grid

_SEED = re.compile(r"^\d+$")
_RANGE = re.compile(r"^(\d+)\s*-\s*(\d+)$")


def parse_seeds(value: Any, where: str = "seeds") -> list[int]:
    """``"0-9"``, ``"0,2,5"``, ``"3"``, ``"0-4,10"``, an int or a list of ints -> seeds, in order,
    without repeats. An empty range (``"5-3"``) or no seed at all is an error."""
    if isinstance(value, bool):
        raise SweepError(f"{where}: expected seeds such as 0-9, 0,2,5 or 3, got {value!r}")
    if isinstance(value, int):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = [part.strip() for part in value.split(",")] if value.strip() else []
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise SweepError(f"{where}: expected seeds such as 0-9, 0,2,5 or 3, got {value!r}")
    seeds: list[int] = []
    for item in items:
        if isinstance(item, int) and not isinstance(item, bool):
            if item < 0:
                raise SweepError(f"{where}: seeds must be >= 0, got {item}")
            seeds.append(item)
            continue
        text = str(item).strip()
        if _SEED.match(text):
            seeds.append(int(text))
        elif m := _RANGE.match(text):
            lo, hi = int(m.group(1)), int(m.group(2))
            if hi < lo:
                raise SweepError(f"{where}: empty seed range '{text}' ({lo} > {hi}); "
                                 f"write it low-high, e.g. {hi}-{lo}")
            seeds.extend(range(lo, hi + 1))
        else:
            raise SweepError(f"{where}: '{text}' is not a seed (>= 0) or a range a-b; "
                             f"use e.g. 0-9, 0,2,5 or 3")
    if not seeds:
        raise SweepError(f"{where}: no seeds given (empty seed list)")
    return list(dict.fromkeys(seeds))


def _names(value: Any, where: str) -> list[str]:
    """A comma-separated string or a list of strings -> names, in order, without repeats."""
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        items = [v.strip() for v in value]
    else:
        raise SweepError(f"{where}: expected a list of names or a comma-separated string, "
                         f"got {value!r}")
    items = [v for v in items if v]
    if not items:
        raise SweepError(f"{where}: empty (give at least one)")
    return list(dict.fromkeys(items))


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _sweep_name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise SweepError(f"{where}: {value!r} is not a usable sweep name "
                         f"(letters, digits, '_', '.', '-')")
    return value


@dataclass
class SweepSpec:
    """What a sweep runs: the four axes, settings shared by every cell, method options.

    ``settings`` are :class:`RunConfig` fields (``epochs``, ``layers``, ...); ``options`` are
    method options, each given to the methods of the grid that declare it (so a method whose
    run id does not involve an option gets the same run as without it). ``origins`` says
    where each field came from, for error messages (``--methods``, ``sweep.toml: field ...``).
    """

    methods: list[str]
    spaces: list[str]
    datasets: list[str] = field(default_factory=lambda: [RunConfig().dataset])
    seeds: list[int] = field(default_factory=lambda: [0])
    settings: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    out: str = DEFAULT_OUT
    name: str = "sweep"
    origins: dict[str, str] = field(default_factory=dict)
    invalid: dict[str, str] = field(default_factory=dict)
    """Fields whose value could not be read (key -> message), kept so that :func:`validate`
    reports them together with every other problem of the grid."""

    @classmethod
    def create(cls, methods: Any = None, spaces: Any = None, datasets: Any = None,
               seeds: Any = None, *, options: dict[str, Any] | None = None,
               out: str | os.PathLike | None = None, name: str | None = None,
               origins: dict[str, str] | None = None, **settings: Any) -> SweepSpec:
        """Build a spec from loose values (lists or comma-separated strings, seed syntax).

        A value that cannot be read does not raise here: it is recorded in ``invalid`` and
        :func:`~nasbench_eval.sweep.validate` reports it with the grid's other problems."""
        origins = dict(origins or {})
        invalid: dict[str, str] = {}

        def read(key: str, parse: Callable[[Any, str], Any], value: Any) -> Any:
            try:
                return parse(value, origins.get(key, key))
            except SweepError as exc:
                invalid[key] = str(exc)
                return None

        spec = cls(methods=[] if methods is None else read("methods", _names, methods) or [],
                   spaces=[] if spaces is None else read("spaces", _names, spaces) or [],
                   options=dict(options or {}), settings=dict(settings), origins=origins,
                   invalid=invalid)
        if datasets is not None:
            spec.datasets = read("datasets", _names, datasets) or spec.datasets
        if seeds is not None:
            spec.seeds = read("seeds", parse_seeds, seeds) or spec.seeds
        if out is not None:
            spec.out = os.fspath(out)
        if name is not None:
            spec.name = read("name", _sweep_name, name) or spec.name
        return spec

    def where(self, key: str) -> str:
        return self.origins.get(key, key)

    def grid(self) -> dict[str, Any]:
        return {"methods": self.methods, "spaces": self.spaces, "datasets": self.datasets,
                "seeds": self.seeds, "settings": self.settings, "options": self.options}


@dataclass(frozen=True)
class Cell:
    """One run of the grid: its position and its (resolved) configuration."""

    index: int
    config: RunConfig

    @property
    def run_id(self) -> str:
        return self.config.run_id()

    @property
    def path(self) -> Path:
        return Path(self.config.out) / self.run_id

    def label(self) -> dict[str, Any]:
        c = self.config
        return {"method": c.method, "space": c.space, "dataset": c.dataset, "seed": c.seed}




def toml_module():
    """``tomllib`` (Python >= 3.11), else the ``tomli`` backport it came from (a dependency of
    the package on Python 3.10): the same ``loads`` and ``TOMLDecodeError``."""
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            raise SweepError("TOML sweep files need tomli on Python < 3.11 "
                             "(pip install tomli)") from None
    return tomllib


# ----------------------------------------------------------------------------- sweep files

def load_sweep_file(path: str | os.PathLike) -> tuple[SweepSpec, dict[str, Any]]:
    """Read a TOML (or, with PyYAML installed, YAML) sweep file.

    Returns the spec and the executor settings it names (``executor``, ``gpus``,
    ``ray_address``, ``cpus_per_run``, ``workers``, ``pack``, and under ``executor_options`` the tables
    of executors with options of their own, e.g. ``[slurm]``). Every problem names the file
    and the field.
    """
    p = Path(path)
    if not p.is_file():
        raise SweepError(f"sweep file {p} not found")
    text = p.read_text()
    suffix = p.suffix.lower()
    if suffix == ".toml":
        toml = toml_module()
        try:
            data = toml.loads(text)
        except toml.TOMLDecodeError as exc:
            raise SweepError(f"{p}: not valid TOML: {exc}") from None
    elif suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise SweepError(f"{p}: YAML sweep files need PyYAML (pip install pyyaml); "
                             f"or write the sweep as TOML") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SweepError(f"{p}: not valid YAML: {exc}") from None
    else:
        raise SweepError(f"{p}: a sweep file must end in .toml (or .yaml / .yml)")
    if not isinstance(data, dict):
        raise SweepError(f"{p}: expected a table of fields at the top level")

    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    origins = {k: f"{p}: field '{k}'" for k in (*FILE_KEYS, "method_options")}
    invalid: dict[str, str] = {}  # reported by validate() with the grid's other problems
    tables = executor_tables()
    for key in [k for k in data if k not in FILE_KEYS and k not in tables]:
        del data[key]
        invalid[key] = (f"{p}: field '{key}': unknown field; valid fields: "
                        f"{', '.join((*FILE_KEYS, *tables))}"
                        + did_you_mean(key, (*FILE_KEYS, *tables)))
    executor_options: dict[str, dict[str, Any]] = {}
    for name in [k for k in tables if k in data]:
        table = data.pop(name)
        if not isinstance(table, dict):
            raise SweepError(f"{p}: field '{name}': expected a table of {name} executor "
                             f"options ([{name}] then key = value lines), got {table!r}")
        table = {str(k).replace("-", "_"): v for k, v in table.items()}
        # checked now, whichever executor runs the sweep: a typo fails before anything runs
        tables[name].parse_options(table, lambda k, n=name: f"{p}: field '{n}.{k}'")
        executor_options[name] = table
    options = data.pop("options", {})
    if not isinstance(options, dict):
        invalid["options"] = (f"{p}: field 'options': expected a table of method options "
                              f"([options] pgd_steps = 1), got {options!r}")
        options = {}
    options = {str(k).replace("-", "_"): v for k, v in options.items()}
    for key in ("out", "name"):
        if key in data and not isinstance(data[key], str):
            invalid[key] = f"{p}: field '{key}': expected a string, got {data.pop(key)!r}"
    executor = {k: data.pop(k) for k in EXECUTOR_KEYS if k in data}
    for key, problem in executor_problems(executor, lambda k: origins[k]).items():
        invalid[key] = problem  # reported with the grid's other problems
        del executor[key]
    if executor_options:
        executor["executor_options"] = executor_options
        executor["executor_options_file"] = str(p)
    grid = {k: data.pop(k) for k in ("name", *GRID_KEYS, "out") if k in data}
    spec = SweepSpec.create(**grid, options=options, origins=origins, **data)
    spec.invalid = {**invalid, **spec.invalid}
    return spec, executor


def executor_tables() -> dict[str, Any]:
    """The registered executors that have options of their own, by name (each may have a
    table of that name in a sweep file)."""
    from .executors import EXECUTORS

    return {name: cls for name, cls in EXECUTORS.items() if cls.options}


def executor_problems(ex: dict[str, Any], where: Callable[[str], str]) -> dict[str, str]:
    """The problems of a sweep's executor settings (a sweep file's or the command line's),
    checked by type and range: key -> message (``where`` names a key: a flag or a file field).
    Collected, not raised, so the grid check reports them with the grid's other problems."""
    from .executors import EXECUTORS

    problems: dict[str, str] = {}
    if "executor" in ex and ex["executor"] not in EXECUTORS:
        problems["executor"] = (f"{where('executor')}: unknown executor {ex['executor']!r}; "
                                f"valid choices: {', '.join(EXECUTORS.names())}"
                                + did_you_mean(ex["executor"], EXECUTORS.names()))
    for key, low in (("gpus", 0), ("cpus_per_run", 1), ("workers", 1), ("pack", 1)):
        v = ex.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < low):
            problems[key] = f"{where(key)}: expected an integer >= {low}, got {v!r}"
    v = ex.get("ray_address")
    if v is not None and not isinstance(v, str):
        problems["ray_address"] = (f"{where('ray_address')}: expected a string (e.g. auto or "
                                   f"ray://host:10001), got {v!r}")
    return problems

