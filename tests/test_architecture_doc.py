"""docs/architecture.md's "where things go" table must stay true: every dotted name it gives
as an entry point resolves, and every path it names exists."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"


def _table() -> str:
    text = DOC.read_text()
    start = text.index("## Where things go")
    return text[start:text.index("\n## ", start + 1)]


def _resolve(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):  # the longest importable module prefix
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


def test_every_entry_point_in_the_table_exists():
    names = re.findall(r"`(nasbench_eval(?:\.\w+)+)`", _table())
    assert len(names) >= 15, names  # the table names its entry points
    for name in names:
        assert _resolve(name) is not None, name


def test_every_path_in_the_table_exists():
    paths = re.findall(r"`((?:nasbench_eval|spaces|benchmarks|docs|tests)/[\w./<>-]*)`", _table())
    assert paths
    for p in paths:
        if "<" in p:  # a pattern such as spaces/<family>/: its folder must exist
            p = p.split("<")[0]
        assert (ROOT / p).exists() or (ROOT / "nasbench_eval" / p).exists(), p


def test_extension_registries_are_registry_objects():
    from nasbench_eval.data import DATASETS
    from nasbench_eval.methods import METHODS
    from nasbench_eval.oracles.base import ORACLES
    from nasbench_eval.registry import Registry
    from nasbench_eval.spaces.registry import FAMILIES
    from nasbench_eval.sweep.executors import EXECUTORS

    for reg in (DATASETS, METHODS, ORACLES, FAMILIES, EXECUTORS):
        assert isinstance(reg, Registry) and len(reg) > 0
