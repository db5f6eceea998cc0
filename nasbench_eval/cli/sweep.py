"""``nasbench-eval sweep``: a thin click layer over :func:`nasbench_eval.sweep.run_sweep`.

Built by :func:`build` (not at import): its method flags come from the method registry and its
``--executor`` choices from the executor registry, both of which ``--plugin`` may extend.
"""
from __future__ import annotations

import sys
from typing import Any

import click

from ..errors import NasbenchEvalError
from ..sweep.executors import EXECUTORS
from .common import CONTEXT, collect_method_flags, parse_kv, pop_method_flags, with_method_flags


def build() -> click.Command:
    """The ``sweep`` command with one flag per option of every registered method."""
    flags = collect_method_flags()

    @click.command(name="sweep", context_settings=CONTEXT)
    @click.argument("sweep_file", required=False, type=click.Path(dir_okay=False))
    @click.option("--methods", help="Comma-separated methods, e.g. darts,sdarts-rs.")
    @click.option("--spaces", help="Comma-separated spaces (names or spec .toml paths).")
    @click.option("--datasets", help="Comma-separated datasets [default: digits].")
    @click.option("--seeds", help="Seeds: 0-9, 0,2,5 or 3 [default: 0].")
    @click.option("--name", help="Sweep name, the prefix of the sweep id [default: sweep].")
    @click.option("--epochs", type=int, help="Search epochs [default: 50].")
    @click.option("--layers", type=int, help="Cells in the supernet [default: 8].")
    @click.option("--channels", type=int, help="Initial channels [default: 16].")
    @click.option("--batch-size", type=int, help="Default: each method's (64; msr 128).")
    @click.option("--train-portion", type=float, help="Default: each method's (0.5; msr 0.8).")
    @click.option("--w-lr", type=float, help="[default: 0.025]")
    @click.option("--alpha-lr", type=float, help="[default: 3e-4]")
    @click.option("--lr-schedule", type=click.Choice(["cosine", "cosine-power"]),
                  help="w learning-rate schedule [default: each method's; cosine, maxw "
                       "cosine-power].")
    @click.option("--lr-power", type=float, help="p of cosine power annealing [default: 2].")
    @click.option("--lr-warmup", type=int, help="Linear warm-up epochs of cosine-power "
                                                "[default: each method's; 0, maxw 5].")
    @click.option("--w-lr-min", type=float, help="Final w learning rate [default: each "
                                                 "method's; 0.001, maxw 1e-4].")
    @click.option("--hessian-every", type=int, help="Hessian eigenvalue every k epochs [default: 0, off].")
    @click.option("--max-steps-per-epoch", type=int, help="Cap steps per epoch (quick looks).")
    @click.option("--oracle", help="Anytime scorer (see `list oracles`) [default: auto].")
    @click.option("--oracle-every", type=int,
                  help="Score every k epochs and at the last [default: 1, every epoch].")
    @click.option("-s", "--set", "sets", multiple=True, metavar="KEY=VALUE",
                  help="Any other run setting (repeatable), e.g. -s bn_recalibration_batches=5.")
    @click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
                  help="Method option (repeatable); given to the methods that have it.")
    @click.option("--device", help="auto, cpu, cuda (local executor without --gpus).")
    @click.option("--data-root", help="Dataset cache directory.")
    @click.option("--out", help="Directory of the run directories and of sweeps/ [default: results].")
    @click.option("--executor", type=click.Choice(EXECUTORS.names()),
                  help="local: this machine (sequential on CPU, one worker per GPU); "
                       "ray: one Ray task per run [default: local].")
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
    @click.option("--dry-run", is_flag=True, help="Print the grid and what would run; run nothing.")
    @click.option("--quiet", is_flag=True, help="No progress lines, only the final counts.")
    @with_method_flags(flags)
    def sweep(sweep_file: str | None, sets: tuple[str, ...], options: tuple[str, ...],
              executor: str | None, gpus: int | None, ray_address: str | None,
              cpus_per_run: int | None, workers: int | None, dry_run: bool, quiet: bool,
              **kwargs: Any) -> None:
        """Run a grid of searches: methods x spaces x datasets x seeds.

        The grid comes from the flags or from SWEEP_FILE (TOML, or YAML with PyYAML), whose
        values the flags override. Every run is an ordinary run directory OUT/<run-id>; the
        index is OUT/sweeps/<sweep-id>.json. Rerunning the same command skips finished runs and
        resumes interrupted ones.

        \b
        nasbench-eval sweep --methods darts,sdarts-rs --spaces s2,s3 --seeds 0-9 --epochs 50
        nasbench-eval sweep studies/smoke.toml --executor ray --gpus 4
        """
        from ..sweep import run_sweep

        method_options = pop_method_flags(flags, kwargs, options)
        grid = {k: v for k, v in kwargs.items() if v is not None}
        origins = {k: f"--{k.replace('_', '-')}" for k in grid}
        for text in sets:
            key, value = parse_kv(text, "--set")
            grid[key], origins[key] = value, f"--set {key}"
        if method_options:
            grid["options"] = method_options
            origins["options"] = "--option"
        try:
            doc = run_sweep(sweep_file, executor=executor, gpus=gpus, ray_address=ray_address,
                            cpus_per_run=cpus_per_run, workers=workers, dry_run=dry_run,
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
