"""nasbench-eval: one fast, trustworthy harness for differentiable NAS (DARTS family).

``run`` and ``RunConfig`` are imported on first use (module ``__getattr__``), so importing a
light part of the package (``nasbench_eval.analysis``, the command line's ``--help``) does not
import torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from .config import RunConfig
    from .runner import run

_LAZY = {"RunConfig": ("config", "RunConfig"), "run": ("runner", "run")}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])


__all__ = ["RunConfig", "__version__", "run"]
