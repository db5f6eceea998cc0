"""Anytime scoring of a discrete architecture, behind one small interface.

The runner asks an oracle for the test error of the current genotype once per epoch; it does
not know which one it talks to. Shipped: ``oneshot`` (the supernet's own weights, BN
re-estimated; every family), ``nasbench101`` (the NAS-Bench-101 table, for families whose
genotypes map to NAS-Bench-101 cells,
:attr:`~nasbench_eval.spaces.base.SpaceFamily.maps_to_nasbench101`) and ``train`` (train the
architecture briefly from scratch: the NAS-Bench-101 cell, or the family's evaluation
network where the family gives a budget for it).

An oracle is one module: subclass :class:`Oracle`, set ``name`` (and ``options``), implement
:meth:`Oracle.score` and decorate with :func:`register_oracle`. Plugin files named in
``$NASBENCH_EVAL_PLUGINS`` register the same way.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from ..config import RunConfig
from ..data import BatchStream
from ..errors import NasbenchEvalError
from ..lazy_torch import nn, torch
from ..options import Option, resolve_options
from ..registry import Registry
from ..spaces.base import Genotype, Space
from ..spaces.registry import family_of


@dataclass
class OracleContext:
    """What an oracle may use: the live supernet and the data streams of the run."""

    supernet: nn.Module
    space: Space
    cfg: RunConfig
    device: torch.device
    search_train: BatchStream
    test: BatchStream


class Oracle:
    """Scores a genotype. Every hook but :meth:`score` has a default."""

    name: ClassVar[str]
    about: ClassVar[str] = ""
    """Provenance and caveats, printed under the oracle by ``nasbench-eval list oracles``."""
    options: ClassVar[dict[str, Option]] = {}
    """Typed option schema (``--oracle-option KEY=VALUE``), checked by :meth:`resolve`."""

    @classmethod
    def available(cls, space: Space, cfg: Any) -> bool:
        """Whether this oracle can score ``space``'s genotypes under ``cfg`` (``--oracle
        auto`` takes the first available one of :data:`AUTO_ORDER`; the runner refuses an
        unavailable explicit choice with :meth:`unavailable_reason`). Default: everywhere."""
        return True

    @classmethod
    def unavailable_reason(cls, space: Space, cfg: Any) -> str:
        """Why :meth:`available` says no (completes "oracle X cannot score space Y: ...")."""
        return "it does not apply to this space"

    @classmethod
    def install_hint(cls, space: Space, cfg: Any) -> str:
        """What the user could install or download so that this oracle would score
        ``space`` (empty where it already can, or never could). The runner prints it when
        the run's oracle comes after this one in :data:`AUTO_ORDER` (see
        :func:`fallback_notes`). Default: nothing."""
        return ""

    @classmethod
    def resolve(cls, given: Mapping[str, Any]) -> dict[str, Any]:
        """The oracle's options: defaults of :attr:`options` overridden by ``given``, parsed
        and checked (an unknown key or bad value names the option)."""
        return resolve_options(f"oracle '{cls.name}'", cls.options, given,
                               lambda key: f"--oracle-option {key}")

    def score(self, genotype: Genotype, ctx: OracleContext) -> dict[str, Any]:
        """Must return ``test_error`` (fraction in [0, 1]); may add other fields."""
        raise NotImplementedError


class NasBench101CellOracle(Oracle):
    """Base of the oracles that score a genotype's NAS-Bench-101 cell (``nasbench101`` looks
    it up): they apply to the families whose genotypes map to those
    cells (:attr:`~nasbench_eval.spaces.base.SpaceFamily.maps_to_nasbench101`), and get the
    cell from the family, so neither names a family."""

    refusal_hint: ClassVar[str] = ""
    """Appended to the error of :meth:`cell_spec` on a space that does not map."""

    @classmethod
    def available(cls, space: Space, cfg: Any) -> bool:
        """Whether ``space``'s family maps its genotypes to NAS-Bench-101 cells."""
        return family_of(space).maps_to_nasbench101

    @classmethod
    def unavailable_reason(cls, space: Space, cfg: Any) -> str:
        return "its architectures do not map to NAS-Bench-101 cells"

    def cell_spec(self, genotype: Genotype, space: Space) -> Any:
        """The pruned NAS-Bench-101 ``ModelSpec`` of ``genotype`` (a clear error naming the
        space and its family when they do not map)."""
        family = family_of(space)
        if not family.maps_to_nasbench101:
            raise NasbenchEvalError(
                f"oracle '{self.name}' scores NAS-Bench-101 cells (spaces such as "
                f"nb1shot1-1/2/3); space '{space.name}' is of family '{family.name}', whose "
                f"genotypes do not map to them{self.refusal_hint}")
        return family.nasbench101_spec(genotype)


ORACLES: Registry[type[Oracle]] = Registry("oracle", "nasbench_eval.oracles")
"""Oracle name -> class; filled by this package's modules and plugins."""

AUTO_ORDER = ("nasbench101", "nasbench201", "nb201-analog", "oneshot")
"""Preference of ``--oracle auto``: the first of these whose ``available(space, cfg)`` says
yes, with the family's measured oracles for the dataset
(:meth:`~nasbench_eval.spaces.base.SpaceFamily.measured_oracles`) between the table (ground
truth where it exists) and the one-shot oracle (the fallback that works everywhere)."""


def register_oracle(cls: type[Oracle]) -> type[Oracle]:
    """Class decorator: register an :class:`Oracle` subclass under its ``name``."""
    if not (isinstance(cls, type) and issubclass(cls, Oracle)):
        raise TypeError(f"register_oracle expects an Oracle subclass, got {cls!r}")
    return ORACLES.register(cls)


def load_oracles() -> dict[str, type[Oracle]]:
    """Every registered oracle, by name (imports this package's modules and plugins)."""
    return ORACLES.all()


def auto_order(space: Space, cfg: RunConfig | None) -> tuple[str, ...]:
    """The oracles ``--oracle auto`` tries for ``space`` under ``cfg``, in order."""
    measured = (family_of(space).measured_oracles(cfg.dataset, space.name) if cfg is not None
                else ())
    return (*AUTO_ORDER[:-1], *measured, AUTO_ORDER[-1])


def resolve_auto_oracle(space: Space, cfg: RunConfig | None) -> str:
    oracles = ORACLES.all()
    for name in auto_order(space, cfg):
        if name in oracles and oracles[name].available(space, cfg):
            return name
    raise RuntimeError(f"no oracle of {AUTO_ORDER} is available")  # oneshot always is


def fallback_notes(space: Space, cfg: RunConfig) -> list[str]:
    """The :meth:`Oracle.install_hint` of every oracle ranked before ``cfg.oracle`` by
    :func:`auto_order` (e.g. "the offline NAS-Bench-201 table needs pip install ..." on a
    run that fell back to ``oneshot``)."""
    oracles = ORACLES.all()
    notes = []
    for name in auto_order(space, cfg):
        if name == cfg.oracle:
            break
        if name in oracles:
            hint = oracles[name].install_hint(space, cfg)
            if hint:
                notes.append(f"note: oracle '{name}' not used: {hint}")
    return notes


def create_oracle(name: str) -> Oracle:
    """The oracle ``name`` (resolved: not ``auto``). An unknown name lists every valid
    ``--oracle``, ``auto`` (the default) included, and suggests the nearest."""
    if name not in ORACLES:
        raise ORACLES.unknown(name, extra_valid=("auto",))
    return ORACLES.get(name)()
