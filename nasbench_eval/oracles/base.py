"""Anytime scoring of a discrete architecture, behind one small interface.

The runner asks an oracle for the test error of the current genotype once per epoch. The
NAS-Bench-101 table lookup and training from scratch plug in here later; the runner does not
know which one it talks to.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from ..config import RunConfig
from ..data import BatchStream
from ..errors import unknown
from ..spaces.genotype import Genotype
from ..spaces.spec import SearchSpace


@dataclass
class OracleContext:
    """What an oracle may use: the live supernet and the data streams of the run."""

    supernet: nn.Module
    space: SearchSpace
    cfg: RunConfig
    device: torch.device
    search_train: BatchStream
    test: BatchStream


class Oracle(Protocol):
    name: ClassVar[str]

    def score(self, genotype: Genotype, ctx: OracleContext) -> dict[str, Any]:
        """Must return ``test_error`` (fraction in [0, 1]); may add other fields."""


ORACLES: dict[str, type] = {}

AUTO_ORDER = ("nasbench101", "oneshot")
"""Preference of ``--oracle auto``: the first registered oracle whose ``available(space, cfg)``
says yes (an oracle without that classmethod applies everywhere)."""


def register_oracle(cls: type) -> type:
    ORACLES[cls.name] = cls
    return cls


def load_oracles() -> dict[str, type]:
    """Import every module of this package; each registers its oracles on import."""
    import importlib
    import pkgutil

    from .. import oracles as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{mod.name}")
    return ORACLES


def resolve_auto_oracle(space: Any, cfg: RunConfig) -> str:
    oracles = load_oracles()
    for name in AUTO_ORDER:
        cls = oracles.get(name)
        if cls is None:
            continue
        available = getattr(cls, "available", None)
        if available is None or available(space, cfg):
            return name
    raise RuntimeError(f"no oracle of {AUTO_ORDER} is available")  # oneshot always is


def create_oracle(name: str) -> Oracle:
    load_oracles()
    if name not in ORACLES:
        raise unknown("oracle", name, ORACLES)
    return ORACLES[name]()
