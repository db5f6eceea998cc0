"""``nasbench-eval sweep``: a thin click layer over :func:`nasbench_eval.sweep.run_sweep`.

Built by :func:`build` (not at import): its method flags come from the method registry and its
``--executor`` choices from the executor registry, both of which ``--plugin`` may extend.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import NasbenchEvalError
from ..options import Option
from ..sweep.executors import EXECUTORS
from .common import (ALPHA_LR_DEFAULT, CONTEXT, Choice, collect_method_flags, parse_kv,
                     pop_method_flags, registered_names, with_method_flags)


_METAVARS = {int: "N", float: "X", str: "TEXT", bool: "BOOL"}


def executor_flags() -> dict[str, tuple[str, str, Option]]:
    """One flag per option of every executor that has its own (``--slurm-partition``), by
    click parameter name: (executor, option key, option)."""
    return {f"{name}_{key}": (name, key, opt) for name, cls in EXECUTORS.items()
            for key, opt in cls.options.items()}


def with_executor_flags(flags: dict[str, tuple[str, str, Option]]) -> Callable[[Callable], Callable]:
    """Decorator: the flags of :func:`executor_flags`, as text parsed later by the executor's
    option schema (so a flag and a sweep-file field are read the same way)."""
    def deco(fn: Callable) -> Callable:
        for param, (name, key, opt) in reversed(list(flags.items())):
            fn = click.option(f"--{name}-{key.replace('_', '-')}", param, default=None,
                              metavar=("|".join(map(str, opt.choices)) if opt.choices
                                       else _METAVARS[opt.type]),
                              help=f"{name}: {opt.help}")(fn)
        return fn

    return deco


def build() -> click.Command:
    """The ``sweep`` command with one flag per option of every registered method."""
    flags = collect_method_flags()
    ex_flags = executor_flags()
    names = {k: ", ".join(v) for k, v in registered_names().items()}

    @click.command(name="sweep", context_settings=CONTEXT)
    @click.argument("sweep_file", required=False, type=click.Path(dir_okay=False))
    @click.option("--methods", help=f"Comma-separated methods, e.g. darts,sdarts-rs; of "
                                    f"{names['method']}.")
    @click.option("--spaces", help=f"Comma-separated spaces: names ({names['space']}) or spec "
                                   f".toml paths.")
    @click.option("--datasets", help=f"Comma-separated datasets, of {names['dataset']} "
                                     f"[default: digits].")
    @click.option("--seeds", help="Seeds: 0-9, 0,2,5 or 3 (integers >= 0) [default: 0].")
    @click.option("--name", help="Sweep name, the prefix of the sweep id [default: sweep].")
    @click.option("--epochs", type=int, help="Search epochs (the learning-rate schedule spans "
                                             "them) [default: 50].")
    @click.option("--layers", type=int, help="Cells in the supernet [default: 8].")
    @click.option("--channels", type=int, help="Initial channels [default: 16].")
    @click.option("--batch-size", type=int, help="Default: each method's (64; msr 128).")
    @click.option("--train-portion", type=float, help="Default: each method's (0.5; msr 0.8).")
    @click.option("--w-lr", type=float, help="Initial learning rate of the weights w (SGD, "
                                             "annealed to --w-lr-min) [default: 0.025].")
    @click.option("--alpha-lr", type=float, help="Learning rate of the architecture parameters "
                                                 f"alpha (Adam) [default: {ALPHA_LR_DEFAULT}].")
    @click.option("--lr-schedule", type=Choice(["cosine", "cosine-power"]),
                  help="w learning-rate schedule [default: each method's; cosine, maxw "
                       "cosine-power].")
    @click.option("--lr-power", type=float, help="p of cosine power annealing [default: 2].")
    @click.option("--lr-warmup", type=int, help="Linear warm-up epochs of cosine-power "
                                                "[default: each method's; 0, maxw 5].")
    @click.option("--w-lr-min", type=float, help="Final w learning rate [default: each "
                                                 "method's; 0.001, maxw 1e-4].")
    @click.option("--hessian-every", type=int, help="Hessian eigenvalue every k epochs [default: 0, off].")
    @click.option("--max-steps-per-epoch", type=int, help="Cap steps per epoch (quick looks).")
    @click.option("--oracle", help=f"Anytime scorer: {names['oracle']} (see `list oracles`) "
                                   f"[default: auto].")
    @click.option("--oracle-every", type=int,
                  help="Score every k epochs and at the last [default: 1, every epoch].")
    @click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE",
                  help="Any other run setting (repeatable), e.g. -s bn_recalibration_batches=5.")
    @click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
                  help="Method option (repeatable); given to the methods that have it.")
    @click.option("--device", help="auto, cpu, cuda (local executor without --gpus).")
    @click.option("--log-to", metavar="SINKS",
                  help="Experiment trackers every run mirrors into: tensorboard, mlflow or "
                       "tensorboard,mlflow [default: none].")
    @click.option("--mlflow-uri", metavar="URI",
                  help="MLflow tracking URI for --log-to mlflow [default: each run's mlruns/].")
    @click.option("--data-root", help="Dataset cache directory.")
    @click.option("--out", help="Directory of the run directories and of sweeps/ [default: runs].")
    @click.option("--executor", type=Choice(EXECUTORS.names()),
                  help="local: this machine (sequential on CPU, one worker per GPU); "
                       "ray: one Ray task per run; slurm: one SLURM job (array task) per run, "
                       "options --slurm-* [default: local].")
    @click.option("--gpus", type=int, help="GPUs to use: local runs one worker per GPU; ray gives "
                                           "each run one GPU, at most N at a time [default: 0].")
    @click.option("--ray-address", help="Ray cluster to join (auto, ray://host:10001); "
                                        "default: start a local Ray instance.")
    @click.option("--cpus-per-run", type=int,
                  help="CPU threads of each run (Ray: the task's num_cpus) [default: local torch's "
                       "choice, ray 1].")
    @click.option("--workers", type=int,
                  help="local, CPU: run N searches at a time in worker processes, each with "
                       "--cpus-per-run threads (default 1) [default: one at a time].")
    @click.option("--pack", type=int,
                  help="Run the seeds of each setting K at a time as one packed search (the "
                       "same run directories and ids; local and ray executors; settings that "
                       "cannot pack run one at a time, with a note) [default: 1, unpacked].")
    @click.option("--dry-run", is_flag=True, help="Print the grid and what would run; run nothing.")
    @click.option("--quiet", is_flag=True, help="No progress lines, only the final counts.")
    @with_executor_flags(ex_flags)
    @with_method_flags(flags)
    def sweep(sweep_file: str | None, sets: tuple[str, ...], options: tuple[str, ...],
              executor: str | None, gpus: int | None, ray_address: str | None,
              cpus_per_run: int | None, workers: int | None, pack: int | None,
              dry_run: bool, quiet: bool,
              **kwargs: Any) -> None:
        """Run a grid of searches: methods x spaces x datasets x seeds.

        The grid comes from the flags or from SWEEP_FILE (TOML, or YAML with PyYAML), whose
        values the flags override. Every run is an ordinary run directory OUT/<run-id>; the
        index is OUT/sweeps/<sweep-id>.json. Rerunning the same command skips finished runs and
        resumes interrupted ones.

        \b
        nasbench-eval sweep --methods darts,sdarts-rs --spaces s2,s3 --seeds 0-9 --epochs 50
        nasbench-eval sweep --methods darts --spaces s3 --seeds 0-7 --pack 8
        nasbench-eval sweep studies/smoke.toml --executor ray --gpus 4
        nasbench-eval sweep studies/smoke.toml --executor slurm --slurm-partition gpu
        """
        from ..sweep import run_sweep

        method_options = pop_method_flags(flags, kwargs, options)
        executor_options: dict[str, dict[str, Any]] = {}
        for param, (name, key, _opt) in ex_flags.items():
            value = kwargs.pop(param)
            if value is not None:
                executor_options.setdefault(name, {})[key] = value
        grid = {k: v for k, v in kwargs.items() if v is not None}
        origins = {k: f"--{k.replace('_', '-')}" for k in grid}
        for text in sets:
            key, value = parse_kv(text, "--set")
            grid[key], origins[key] = value, f"--set {key}"
        if method_options:
            grid["options"] = method_options
            origins["options"] = "--option"
        try:
            if cpus_per_run is None and not workers and not gpus:  # runs in this process
                from ..execution import set_threads

                line = set_threads(None)
                if not quiet and not dry_run:
                    click.echo(line, err=True)
            doc = run_sweep(sweep_file, executor=executor, gpus=gpus, ray_address=ray_address,
                            cpus_per_run=cpus_per_run, workers=workers, pack=pack,
                            executor_options=executor_options, dry_run=dry_run,
                            quiet=quiet, origins=origins, **grid)
        except NasbenchEvalError as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            click.echo("\ninterrupted: rerun the same command to resume the sweep", err=True)
            sys.exit(130)
        if not dry_run:
            failed = [c for c in doc["cells"] if c["status"] == "failed"]
            if failed:
                raise click.ClickException(f"{len(failed)} of {len(doc['cells'])} runs failed "
                                           f"(errors in the index; rerun to retry them)")

    return sweep
