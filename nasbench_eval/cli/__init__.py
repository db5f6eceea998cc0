"""The ``nasbench-eval`` command line: one module per command group, each thin over the API.

``main`` (the click group, entry point ``nasbench_eval.cli:main``) is in :mod:`.group`; the
commands are in :mod:`.run`, :mod:`.listing`, :mod:`.evaluate`, :mod:`.sweep`, :mod:`.nb101`
and :mod:`.analysis`, shared pieces in :mod:`.common`.
"""
from __future__ import annotations

from .group import main

__all__ = ["main"]
