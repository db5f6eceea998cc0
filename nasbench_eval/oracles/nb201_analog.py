"""An offline NAS-Bench-201 table: the CIFAR-10 accuracies shipped in PyPI's ``analog-nasbench``.

``analog-nasbench`` 0.1.3 (optional; ``pip install 'nasbench-eval[nb201-offline]'``) ships
``analognasbench/data.anb``, a pickle of a dict: a 6-tuple of op indices -> an object whose
``baseline_accuracy`` is the CIFAR-10 test accuracy (%) of that NAS-Bench-201 cell as trained
by the package's authors (AnalogNAS-Bench), alongside accuracies under quantisation and
analog-hardware noise that this oracle does not use. So a search on any dataset here can
report every epoch how good its current cell is when trained on CIFAR-10, without the 2 GB
official file.

**Caveats** (also printed by ``nasbench-eval list oracles``):

* these are not NAS-Bench-201's numbers: the authors' own training, one run per cell, with
  a protocol the package does not document; the rank correlation with official figures for
  a few cells is in ``docs/nb201.md``;
* the package has no license metadata; nothing of it is copied here, the user installs it;
* the key encoding is not documented either; it was inferred from the data: ops
  ``0 skip_connect, 1 none, 2 nor_conv_3x3, 3 nor_conv_1x1, 4 avg_pool_3x3`` (index 1 is the
  only op whose all-edges cell is at chance, 10%), edges ``0->1, 0->2, 0->3, 1->2, 1->3,
  2->3`` (the only order under which exactly the three minimal cuts of the cell, and no other
  triple of ``none`` edges, give 10%; the reversed order is indistinguishable by cuts). It is
  NASLib's "op indices" convention as we recall it [U], and under it the table ranks the
  cells with published official figures in the official order
  (``benchmarks/nb201_analog_rank.py``; docs/nb201.md).

**Reading it safely**: the file is a pickle, so it is read with a restricted unpickler that
admits only the two classes of the package's records, mapped to inert stand-ins of our own;
any other global in the stream is refused, and the package itself is never imported.
"""
from __future__ import annotations

import importlib.util
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from ..errors import NasbenchEvalError
from ..options import Option
from ..spaces.base import Genotype, Space
from ..spaces.registry import family_of
from .base import Oracle, OracleContext, register_oracle

EXTRA = "pip install 'nasbench-eval[nb201-offline]'  (PyPI analog-nasbench, data.anb)"
OP_INDEX = {"skip_connect": 0, "none": 1, "nor_conv_3x3": 2, "nor_conv_1x1": 3,
            "avg_pool_3x3": 4}
"""The table's op indices (inferred; see the module docstring)."""
EDGE_ORDER = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
"""The table's edge order, (source, target); the architecture string's order differs."""
ARCH_EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
"""Edge order of the architecture string (``Nb201Genotype.ops``)."""


class _Record:
    """Inert stand-in for the package's ``Architecture`` (attributes set by unpickling)."""


class _Drift:
    """Inert stand-in for the package's ``DriftMeasurement``."""


_ALLOWED = {("analognasbench.data", "Architecture"): _Record,
            ("analognasbench.data", "DriftMeasurement"): _Drift}


class RestrictedUnpickler(pickle.Unpickler):
    """Admits only the two record classes of ``data.anb`` (as stand-ins); refuses any other
    global, so a tampered file cannot run code."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in the "
                                         f"offline NAS-Bench-201 table") from None


def installed_path() -> Path | None:
    """``data.anb`` of the installed ``analognasbench`` package (found without importing
    it), or None."""
    try:
        spec = importlib.util.find_spec("analognasbench")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "data.anb"
        if p.is_file():
            return p
    return None


@lru_cache(maxsize=4)
def load_table(path: str) -> dict[tuple[int, ...], float]:
    """Key tuple -> CIFAR-10 test accuracy (%) from ``path`` (read once per process)."""
    try:
        with open(path, "rb") as f:
            data = RestrictedUnpickler(f).load()
    except OSError as exc:
        raise NasbenchEvalError(f"nb201-analog: cannot read {path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
        raise NasbenchEvalError(f"nb201-analog: {path} is not an analog-nasbench table "
                                f"({exc})") from None
    if not isinstance(data, dict):
        raise NasbenchEvalError(f"nb201-analog: {path} holds a {type(data).__name__}, not the "
                                f"table's dict")
    table: dict[tuple[int, ...], float] = {}
    for key, rec in data.items():
        acc = vars(rec).get("baseline_accuracy") if isinstance(rec, _Record) else None
        if not (isinstance(key, tuple) and len(key) == 6 and isinstance(acc, (int, float))):
            raise NasbenchEvalError(f"nb201-analog: {path}: unexpected entry {key!r}")
        table[tuple(int(k) for k in key)] = float(acc)
    return table


def table_key(ops: tuple[str, ...]) -> tuple[int, ...]:
    """The table's key of a cell given in architecture-string edge order."""
    by_edge = dict(zip(ARCH_EDGES, ops))
    return tuple(OP_INDEX[by_edge[e]] for e in EDGE_ORDER)


def cifar10_accuracy(arch: str, path: str) -> float:
    """The table's CIFAR-10 test accuracy (%) of an architecture string."""
    from ..spaces.nb201.genotype import Nb201Genotype

    g = Nb201Genotype.from_arch_str(arch)
    if g.nodes != 4:
        raise NasbenchEvalError(f"nb201-analog: the table holds 4-node cells; {arch} has "
                                f"{g.nodes} nodes")
    key = table_key(g.ops)
    table = load_table(path)
    if key not in table:
        raise NasbenchEvalError(f"nb201-analog: {arch} (key {key}) is not in {path}")
    return table[key]


@register_oracle
class Nb201AnalogOracle(Oracle):
    """CIFAR-10 test accuracy of NAS-Bench-201 cells from PyPI analog-nasbench (offline)."""

    name: ClassVar[str] = "nb201-analog"
    about: ClassVar[str] = (
        "source: PyPI analog-nasbench 0.1.3 (AnalogNAS-Bench), data.anb, field "
        "baseline_accuracy; NOT NAS-Bench-201's numbers: its authors' own CIFAR-10 training, "
        "one run per cell, protocol undocumented, no license metadata (install it yourself: "
        f"{EXTRA}); key encoding inferred from the data (docs/nb201.md); read with a "
        "restricted unpickler. Scores CIFAR-10 whatever dataset the search uses.")
    options: ClassVar[dict[str, Option]] = {
        "path": Option(None, str, "the table file; none: data.anb of the installed "
                                  "analog-nasbench package", none_ok=True),
    }

    def __init__(self, **options: Any) -> None:
        self.overrides = dict(options)
        self.resolve(options)

    @classmethod
    def _path(cls, cfg: Any) -> Path | None:
        given = cls.resolve(cfg.oracle_options)["path"] if cfg.oracle == cls.name else None
        return Path(given) if given else installed_path()

    @classmethod
    def available(cls, space: Space, cfg: Any) -> bool:
        if not family_of(space).maps_to_nasbench201 or space.arch_shapes().get("cell") != (6, 5):
            return False
        return cls._path(cfg) is not None

    @classmethod
    def unavailable_reason(cls, space: Space, cfg: Any) -> str:
        if not family_of(space).maps_to_nasbench201:
            return "its architectures are not NAS-Bench-201 cells (use a space such as nb201)"
        return cls.install_hint(space, cfg) or "the table holds only the 4-node, 5-op space"

    @classmethod
    def install_hint(cls, space: Space, cfg: Any) -> str:
        if family_of(space).maps_to_nasbench201 and cls._path(cfg) is None:
            return f"the offline NAS-Bench-201 CIFAR-10 table needs {EXTRA}"
        return ""

    def score(self, genotype: Genotype, ctx: OracleContext) -> dict[str, Any]:
        opts = self.resolve({**ctx.cfg.oracle_options, **self.overrides})
        path = Path(opts["path"]) if opts["path"] else installed_path()
        if path is None:
            raise NasbenchEvalError(f"oracle 'nb201-analog': {self.install_hint(ctx.space, ctx.cfg)}")
        arch = family_of(ctx.space).nasbench201_arch(genotype)
        acc = cifar10_accuracy(arch, str(path))
        return {"test_error": 1.0 - acc / 100.0, "cifar10_test_acc": acc,
                "protocol": "cifar10/test (analog-nasbench baseline_accuracy, one run)"}


__all__ = ["EDGE_ORDER", "Nb201AnalogOracle", "OP_INDEX", "RestrictedUnpickler",
           "cifar10_accuracy", "installed_path", "load_table", "table_key"]
