"""nasbench-eval: one fast, trustworthy harness for differentiable NAS (DARTS family)."""
from __future__ import annotations

__version__ = "0.1.0"

from .config import RunConfig  # noqa: E402
from .runner import run  # noqa: E402

__all__ = ["RunConfig", "__version__", "run"]
