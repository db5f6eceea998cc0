"""Resolution of a run's open settings, once, in the orchestration layer.

A :class:`~nasbench_eval.config.RunConfig` is plain data and may leave settings open: a
``None`` batch size or train portion (the method's ``config_defaults``, else
:data:`~nasbench_eval.config.GLOBAL_DEFAULTS`) and ``oracle="auto"`` (the first available of
:data:`~nasbench_eval.oracles.AUTO_ORDER` for the space). :func:`resolve_config` fills them
before the run id is taken, so the id, ``config.json`` and a later resume all see the concrete
values; the runner (``run``, ``build_search``) and the sweep call it, nothing else does. It
lives here, not on the config, because it needs the method, oracle and space registries, and
the config must not import them (that was an import cycle: config -> methods -> config).
"""
from __future__ import annotations

from dataclasses import replace

from .config import GLOBAL_DEFAULTS, RunConfig
from .methods import method_class
from .oracles import resolve_auto_oracle
from .spaces import load_space


def resolve_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with every open setting filled; idempotent (a resolved config is returned
    equal). Unknown method, space or oracle names raise the registries' errors."""
    defaults = {**GLOBAL_DEFAULTS, **method_class(cfg.method).config_defaults}
    out = replace(cfg, **{k: v for k, v in defaults.items() if getattr(cfg, k) is None})
    if out.oracle == "auto":  # resolved before the run id, so a resume keeps its oracle
        out = replace(out, oracle=resolve_auto_oracle(load_space(out.space), out))
    return out


__all__ = ["resolve_config"]
