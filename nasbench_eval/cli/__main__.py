"""``python -m nasbench_eval.cli``: the same as ``nasbench-eval``."""
from __future__ import annotations

from .group import main

if __name__ == "__main__":  # pragma: no cover
    main(prog_name="nasbench-eval")
