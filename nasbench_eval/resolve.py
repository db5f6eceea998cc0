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
from pathlib import Path
from typing import Any

from .config import GLOBAL_DEFAULTS, RunConfig, written_before_issue16
from .methods import method_class
from .options import as_schema, resolve_given
from .oracles import resolve_auto_oracle
from .rundir import CONFIG_FILE, is_done, read_json, read_summary
from .sinks import check_sinks
from .spaces import load_space


def resolve_config(cfg: RunConfig) -> RunConfig:
    """``cfg`` with every open setting filled; idempotent (a resolved config is returned
    equal). Unknown method, space or oracle names raise the registries' errors."""
    cls = method_class(cfg.method)
    defaults = {**GLOBAL_DEFAULTS, **cls.config_defaults}
    if cfg.lr_schedule is not None:
        # a schedule the user chose: the method's schedule defaults (maxw: sharpDARTS's
        # warm-up and minimum) belong to its own schedule, not to this one
        defaults.update({k: GLOBAL_DEFAULTS[k] for k in ("lr_warmup", "w_lr_min")})
    out = replace(cfg, **{k: v for k, v in defaults.items() if getattr(cfg, k) is None})
    # method options as the run id must see them: keys with underscores, values parsed
    # (Python callers may pass "2" or dashed keys; the CLI and sweeps already parse them)
    given = resolve_given(f"method '{cfg.method}'", cls.options, out.method_options)
    pinned = {k: opt.default for k, opt in as_schema(cls.options).items()
              if opt.in_run_id and k not in given}
    if pinned or given != out.method_options:  # in_run_id defaults written out explicitly
        out = replace(out, method_options={**given, **pinned})
    check_sinks(out.log_to)  # a misspelt --log-to fails here, not as a warning mid-run
    if out.oracle == "auto":  # resolved before the run id, so a resume keeps its oracle
        out = replace(out, oracle=resolve_auto_oracle(load_space(out.space), out))
    return out


def legacy_resume_conflict(config: dict[str, Any], cfg: RunConfig) -> str | None:
    """Why the unfinished run whose config.json settings are ``config`` must not be resumed
    by this version, or None. Runs written before issue 16 keep their run ids, but where the
    computation behind an unchanged id changed (cosine-power's normalisation, the Hessian
    eigenvalue's convention, and what the method's ``legacy_resume_conflict`` names),
    resuming would mix two versions in one run."""
    if not written_before_issue16(config):
        return None
    if config.get("lr_schedule") == "cosine-power":
        return ("the cosine-power schedule is now normalised over epochs 1..T as sharpDARTS "
                "(before: 0..T-1)")
    if config.get("hessian_every"):
        return ("--hessian-every now reports lambda_max with the weight-decay term (before: "
                "the eigenvalue of largest magnitude without it)")
    return method_class(cfg.method).legacy_resume_conflict(config)


def earlier_auto_run(requested: RunConfig, cfg: RunConfig) -> tuple[Path, str] | None:
    """The unfinished run a ``--resume`` with ``--oracle auto`` most likely means, when the
    run directory of ``cfg`` (``requested`` resolved) does not exist: a run in the same
    ``--out`` with the same settings except the oracle, i.e. one where ``auto`` chose another
    oracle in an earlier version (issue 22 changed its choice on the DARTS spaces). Returns
    its directory and oracle, or None. Without this, such a resume would start a new run
    under a new id and leave the user's run where it stopped, without a word."""
    if requested.oracle != "auto":
        return None
    out = Path(cfg.out)
    run_id = cfg.run_id()
    if (out / run_id).exists() or not out.is_dir():
        return None
    prefix = run_id.rsplit("-", 1)[0] + "-"  # method-space-dataset-seedN-
    for run_dir in sorted(out.glob(prefix + "*")):
        doc = read_json(run_dir / CONFIG_FILE)
        config = doc.get("config") if isinstance(doc, dict) else None
        if not isinstance(config, dict) or config.get("oracle") in (None, cfg.oracle):
            continue
        if is_done(read_summary(run_dir, unreadable_ok=True)):
            continue
        try:
            same = RunConfig.from_dict({**config, "oracle": cfg.oracle,
                                        "oracle_options": cfg.oracle_options})
        except (TypeError, ValueError):  # a config this version cannot read: not the one meant
            continue
        if same.run_id() == run_id:
            return run_dir, str(config["oracle"])
    return None


__all__ = ["earlier_auto_run", "legacy_resume_conflict", "resolve_config"]
