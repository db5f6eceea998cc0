"""Resolution of a run's open settings, once, in the orchestration layer.

A :class:`~nasbench_eval.config.RunConfig` is plain data and may leave settings open: a
``None`` batch size or train portion (the method's ``config_defaults``, else
:data:`~nasbench_eval.config.GLOBAL_DEFAULTS`) and ``oracle="auto"`` (the first available of
:data:`~nasbench_eval.oracles.AUTO_ORDER` for the space). :func:`resolve_config` fills them
before the run id is taken, so the id, ``config.json`` and a later resume all see the concrete
values; method options declared ``Option(in_run_id=True)`` are written into
``method_options`` at their defaults (so a changed default names a new run). The runner
(``run``, ``build_search``) and the sweep call it, nothing else does. It
lives here, not on the config, because it needs the method, oracle and space registries, and
the config must not import them (that was an import cycle: config -> methods -> config).
"""
from __future__ import annotations

from dataclasses import replace

from .config import GLOBAL_DEFAULTS, RunConfig
from .methods import method_class
from .options import as_schema
from .oracles import resolve_auto_oracle
from .spaces import load_space


def resolve_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with every open setting filled; idempotent (a resolved config is returned
    equal). Unknown method, space or oracle names raise the registries' errors."""
    cls = method_class(cfg.method)
    defaults = {**GLOBAL_DEFAULTS, **cls.config_defaults}
    out = replace(cfg, **{k: v for k, v in defaults.items() if getattr(cfg, k) is None})
    pinned = {k: opt.default for k, opt in as_schema(cls.options).items()
              if opt.in_run_id and k not in out.method_options}
    if pinned:  # defaults that enter the run id (Option.in_run_id), written out explicitly
        out = replace(out, method_options={**out.method_options, **pinned})
    if out.oracle == "auto":  # resolved before the run id, so a resume keeps its oracle
        out = replace(out, oracle=resolve_auto_oracle(load_space(out.space), out))
    return out


__all__ = ["resolve_config"]
