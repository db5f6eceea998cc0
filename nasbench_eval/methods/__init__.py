"""Search methods. Each module registers its classes with :func:`base.register`; adding a
method means adding a module here, nothing else."""
from __future__ import annotations

import importlib
import pkgutil

from .base import METHODS, GradientMethod, Method, Mixing, SoftmaxMixing, create_method, method_class, register

_loaded = False


def load_all() -> dict[str, type]:
    global _loaded
    if not _loaded:
        for mod in pkgutil.iter_modules(__path__):
            if mod.name != "base":
                importlib.import_module(f"{__name__}.{mod.name}")
        _loaded = True
    return METHODS


__all__ = ["METHODS", "GradientMethod", "Method", "Mixing", "SoftmaxMixing", "create_method",
           "load_all", "method_class", "register"]
