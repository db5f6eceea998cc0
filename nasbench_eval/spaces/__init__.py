"""Search spaces: one folder per space family (``darts/``, ``nb101/``), the family interface
(:mod:`.base`), the family registry and spec loading (:mod:`.registry`), and the supernet
seam (:mod:`.supernet`). See ``docs/spaces.md``.

The names below are resolved on first use (module ``__getattr__``): importing the package
imports no family and no torch code, so ``nasbench-eval list`` and ``--help`` pay only for
what they touch. ``from nasbench_eval.spaces import DartsSupernet, load_space`` works as before.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY: dict[str, str] = {
    "EvalNetwork": "base", "GenotypeError": "base", "SpaceFamily": "base",
    "Genotype": "darts.genotype", "derive_genotype": "darts.genotype",
    "discrete_weights": "darts.genotype", "SearchSpace": "darts.spec",
    "DartsSupernet": "darts.supernet",
    "FAMILIES": "registry", "builtin_spaces": "registry", "family_of": "registry",
    "get_family": "registry", "load_space": "registry", "register_family": "registry",
}
"""Public name -> the submodule (relative to this package) that defines it."""

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # what static checkers and IDEs see
    from .base import EvalNetwork, GenotypeError, SpaceFamily
    from .darts.genotype import Genotype, derive_genotype, discrete_weights
    from .darts.spec import SearchSpace
    from .darts.supernet import DartsSupernet
    from .registry import (FAMILIES, builtin_spaces, family_of, get_family, load_space,
                           register_family)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
