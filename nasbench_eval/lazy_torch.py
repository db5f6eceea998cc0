"""``torch``, ``nn`` and ``F`` for the modules every ``list`` and ``--help`` imports, loaded on
first use.

The registries (methods, oracles, space families, datasets) import the modules that define
their entries to learn their names, option schemas, papers and descriptions, which need no
torch; importing torch costs seconds. Those modules write
``from ..lazy_torch import F, nn, torch`` instead of importing torch: a name here stands for
the module and imports it on the first attribute read (``torch.zeros``), so function bodies
read as usual and ``nasbench-eval list methods`` never loads torch. Nothing may touch torch
while such a module is imported (a base class ``nn.Module``, a decorator ``@torch.no_grad()``,
a default ``torch.contiguous_format``): ``tests/test_cli.py`` fails when torch is loaded.
Supernets and networks, imported only to build one, import torch as usual.

Attributes are read from the real module on every access (not copied), so a test that
monkeypatches ``torch.something`` is seen here as well.
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

R = TypeVar("R")


class LazyModule:
    """Stands for the module ``name``: imported on the first attribute read, then delegated."""

    __slots__ = ("_name", "_module")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        module = self._module
        if module is None:
            module = self._module = importlib.import_module(self._name)
        return getattr(module, attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<lazy module {self._name!r} ({state})>"


if TYPE_CHECKING:  # what static checkers and IDEs see: the modules themselves
    import torch
    import torch.nn.functional as F
    from torch import nn
else:
    torch = LazyModule("torch")
    nn = LazyModule("torch.nn")
    F = LazyModule("torch.nn.functional")



def no_grad(fn: Callable[..., R]) -> Callable[..., R]:
    """``@torch.no_grad()`` for a plain function of such a module: the decorator itself would
    import torch when the module is imported, this one enters ``torch.no_grad()`` at each call."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> R:
        with torch.no_grad():
            return fn(*args, **kwargs)

    return wrapper


__all__ = ["F", "LazyModule", "nn", "no_grad", "torch"]
