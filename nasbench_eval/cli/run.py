"""``nasbench-eval run``: one architecture search, a thin layer over :func:`nasbench_eval.run`.

The command is built by :func:`build`, not at import, because its method flags come from the
method registry, which ``--plugin`` may extend first.
"""
from __future__ import annotations

from typing import Any

import click

from ..config import RunConfig
from ..errors import NasbenchEvalError
from .common import (ALPHA_LR_DEFAULT, CONTEXT, Choice, collect_method_flags, fail,
                     method_options_for, parse_kv, pop_method_flags, registered_names,
                     run_resumable, with_method_flags)

SHORT_HELP = "Run one architecture search and write runs/<run-id>/ (--out)."

_D = RunConfig()


def build() -> click.Command:
    """The ``run`` command with one flag per option of every registered method."""
    flags = collect_method_flags()
    names = {k: ", ".join(v) for k, v in registered_names().items()}

    @click.command(name="run", context_settings=CONTEXT)
    @click.option("--method", default=_D.method, show_default=True,
                  help=f"Search method: {names['method']} (see `list methods`).")
    @click.option("--space", default=_D.space, show_default=True,
                  help=f"Space: {names['space']} (see `list spaces`), or a spec .toml path.")
    @click.option("--dataset", default=_D.dataset, show_default=True,
                  help=f"Dataset: {names['dataset']} (see `list datasets`).")
    @click.option("--epochs", default=_D.epochs, show_default=True, type=int,
                  help="Search epochs (the learning-rate schedule spans them).")
    @click.option("--seed", default=_D.seed, show_default=True, type=int,
                  help="Seed of all randomness (initialisation, batches, per-epoch draws); an "
                       "integer >= 0.")
    @click.option("--seeds", default=None, metavar="SEEDS",
                  help="Several seeds (0-9, 0,3,7 or 0-3,8) run as one packed search: the same "
                       "run directories and ids as one run per seed (darts, maxw; docs/speed.md).")
    @click.option("--pack", default=None, type=int,
                  help="With --seeds: seeds per packed group (default: all; 1: one run after "
                       "another).")
    @click.option("--workers", default=None, type=int,
                  help="With --seeds: run the packed groups in N worker processes side by "
                       "side, one CPU thread each (default --pack: an equal share per worker); "
                       "on a CPU the fastest way to pack seeds on N cores (docs/speed.md).")
    @click.option("--layers", default=_D.layers, show_default=True, type=int, help="Cells in the supernet.")
    @click.option("--channels", default=_D.channels, show_default=True, type=int, help="Initial channels.")
    @click.option("--batch-size", default=None, type=int, help="Default: the method's (64; msr 128).")
    @click.option("--train-portion", default=None, type=float,
                  help="Share of the training set used as search-train, the rest is search-val "
                       "(default: the method's; 0.5, msr 0.8).")
    @click.option("--w-lr", default=_D.w_lr, show_default=True, type=float,
                  help="Initial learning rate of the weights w (SGD, annealed to --w-lr-min).")
    @click.option("--alpha-lr", default=_D.alpha_lr, type=float,
                  help=f"Learning rate of the architecture parameters alpha (Adam).  "
                       f"[default: {ALPHA_LR_DEFAULT}]")
    @click.option("--lr-schedule", default=None, type=Choice(["cosine", "cosine-power"]),
                  help="w learning-rate schedule (default: the method's; cosine, maxw cosine-power).")
    @click.option("--lr-power", default=_D.lr_power, show_default=True, type=float,
                  help="p of cosine power annealing (1 = its cosine special case).")
    # issue 16 (fidelity): sharpDARTS's schedule settings, defaulted by the method
    @click.option("--w-lr-min", default=None, type=float,
                  help="Final w learning rate (default: the method's; 0.001, maxw 1e-4).")
    @click.option("--lr-warmup", default=None, type=int,
                  help="Linear warm-up epochs of cosine-power (default: the method's; 0, maxw 5).")
    @click.option("--hessian-every", default=_D.hessian_every, show_default=True, type=int,
                  help="lambda_max of the Hessian of L_val w.r.t. alpha every k epochs (0 = off).")
    @click.option("--hessian-weight-decay/--no-hessian-weight-decay",
                  default=_D.hessian_weight_decay, show_default=True,
                  help="Include the alpha weight-decay term (+wd I) in the Hessian, as RobustDARTS.")
    @click.option("--max-steps-per-epoch", default=None, type=int, help="Cap steps per epoch (quick looks).")
    @click.option("--oracle", default=_D.oracle, show_default=True,
                  help=f"Anytime scorer of the derived architecture: {names['oracle']}; auto: "
                       f"a table where one applies (NAS-Bench-101 / -201), else what measured "
                       f"best for the space and dataset (s3 on digits: train), else oneshot "
                       f"(see `list oracles`).")
    @click.option("--oracle-every", default=_D.oracle_every, show_default=True, type=int,
                  help="Score the derived architecture every k epochs and at the last (the "
                       "other epochs' anytime_test_error stays empty).")
    @click.option("--oracle-option", "oracle_options", multiple=True, metavar="KEY=VALUE",
                  help="Oracle-specific option (repeatable), e.g. --oracle-option train_epochs=2.")
    @click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
                  help="Method-specific option (repeatable), e.g. -o pgd_steps=1.")
    @click.option("--device", default=_D.device, show_default=True, help="auto, cpu, cuda, cuda:N.")
    @click.option("--memory-format", type=Choice(["auto", "channels_last", "contiguous"]),
                  default=_D.memory_format, show_default=True,
                  help="Tensor layout (auto: channels_last; see docs/speed.md).")
    @click.option("--precision", type=Choice(["auto", "fp32", "bf16"]),
                  default=_D.precision, show_default=True,
                  help="Autocast of the supernet's forward (auto: bf16 on CUDA, fp32 on CPU); "
                       "alpha, its softmax, the loss and Hessian probes stay fp32.")
    @click.option("--data-loader", type=Choice(["device", "torch"]),
                  default=_D.data_loader, show_default=True,
                  help="device: batches drawn and augmented on the device; torch: a CPU "
                       "DataLoader with per-image transforms (the reference code's path).")
    @click.option("--compile/--no-compile", "compile", default=_D.compile, show_default=True,
                  help="torch.compile the supernet (CUDA graphs on GPU); long compile on CPU.")
    @click.option("--cuda-graphs", is_flag=True, default=_D.cuda_graphs,
                  help="Capture each epoch's search step as a CUDA graph and replay it "
                       "(CUDA only; methods that support it; not yet verified on a GPU).")
    @click.option("--fused-edges", type=Choice(["auto", "on", "off"]),
                  default=_D.fused_edges, show_default=True,
                  help="Run cells source-fused: every candidate of all edges leaving a state "
                       "as one kernel (auto: the space family's default, on for DARTS cells, "
                       "off for nb201, measured slower there; off: one module call per "
                       "candidate and edge).")
    @click.option("--log-to", default="", metavar="SINKS",
                  help="Mirror the run into experiment trackers: tensorboard, mlflow or "
                       "tensorboard,mlflow (see `list sinks`; metrics.csv stays the record; a "
                       "sink that fails warns and the run goes on).")
    @click.option("--mlflow-uri", default=None, metavar="URI",
                  help="MLflow tracking URI for --log-to mlflow (a server http://..., a "
                       "folder; default: a file store in the run directory's mlruns/).")
    @click.option("--out", default=_D.out, show_default=True, help="Directory that holds run directories.")
    @click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
                  help="Torch CPU threads [default: $NASBENCH_EVAL_THREADS, else "
                       "$OMP_NUM_THREADS, else 1].")
    @click.option("--data-root", default=None, help="Dataset cache (default $NASBENCH_EVAL_DATA or ~/.cache/nasbench-eval/data).")
    @click.option("--resume", is_flag=True, help="Continue the run with these settings from its last finished epoch.")
    @click.option("--quiet", is_flag=True, help="No progress bar or per-epoch lines.")
    @with_method_flags(flags)
    def run(options: tuple[str, ...], oracle_options: tuple[str, ...], resume: bool,
            quiet: bool, threads: int | None, **kwargs: Any) -> None:
        """Run one architecture search and write runs/<run-id>/ (--out)."""
        given = pop_method_flags(flags, kwargs, options)
        seeds, pack, workers = kwargs.pop("seeds"), kwargs.pop("pack"), kwargs.pop("workers")
        if pack is not None and seeds is None:
            fail(NasbenchEvalError("--pack needs --seeds (the seeds to pack)"))
        if workers is not None and seeds is None:
            fail(NasbenchEvalError("--workers needs --seeds (a single run uses --threads)"))
        try:
            cfg = RunConfig(**kwargs, method_options=method_options_for(kwargs["method"], given),
                            progress=not quiet, oracle_options=dict(
                                parse_kv(o, "--oracle-option") for o in oracle_options))
        except (NasbenchEvalError, ValueError) as exc:
            fail(exc)
        if seeds is not None:
            execute_seeds(cfg, seeds, pack, resume, threads, workers)
        else:
            execute(cfg, resume, threads)

    return run


def execute_seeds(cfg: RunConfig, seeds: str, pack: int | None, resume: bool,
                  threads: int | None = None, workers: int | None = None) -> None:
    """Run ``cfg`` for every seed of ``seeds`` (packed ``pack`` at a time) and list them."""
    from ..execution import set_threads
    from ..packing.runner import parse_seeds, run_seeds
    from ..rundir import read_summary

    try:
        parsed = parse_seeds(seeds)
        line = set_threads(threads)
    except NasbenchEvalError as exc:
        fail(exc)
    if cfg.progress:
        click.echo(line, err=True)
    if workers is not None and workers > 1 and threads is not None:
        fail(NasbenchEvalError("--workers runs each worker on one CPU thread; leave out "
                               "--threads"))
    dirs = run_resumable(run_seeds, cfg, parsed, pack, resume=resume, workers=workers)
    for d in dirs:
        summary = read_summary(d) or {}
        err = summary.get("final_test_error")
        click.echo(f"{d}  status: {summary.get('status')}  epochs: "
                   f"{summary.get('epochs_done')}/{summary.get('epochs')}  final anytime test "
                   f"error: " + (f"{err:.4f}" if err is not None else "-"))


def execute(cfg: RunConfig, resume: bool, threads: int | None = None) -> None:
    """Run ``cfg`` with ``threads`` torch CPU threads (None: :func:`choose_threads`'s
    choice) and print where the results are and the final architecture."""
    from ..execution import set_threads
    from ..rundir import read_summary
    from ..runner import run as run_search

    try:
        line = set_threads(threads)
    except NasbenchEvalError as exc:
        fail(exc)
    if cfg.progress:
        click.echo(line, err=True)

    run_dir = run_resumable(run_search, cfg, resume=resume)
    summary = read_summary(run_dir) or {}
    click.echo(f"run directory: {run_dir}")
    click.echo(f"status: {summary.get('status')}  epochs: {summary.get('epochs_done')}/"
               f"{summary.get('epochs')}  wall time: {summary.get('wall_time_s')} s")
    if summary.get("status") == "diverged":
        click.echo(f"diverged: {summary.get('error')}")
    elif summary.get("final_genotype"):
        from ..spaces import load_space

        g = load_space(cfg.space).genotype_from_dict(summary["final_genotype"])
        err, pf = summary.get("final_test_error"), summary.get("final_param_free_fraction")
        click.echo("final anytime test error: " + (f"{err:.4f}" if err is not None else "-")
                   + f" (oracle {summary.get('oracle')})"
                   + ("" if pf is None else f"  parameter-free fraction (normal): {pf:.3f}"))
        click.echo(f"genotype: {g}")
        if cfg.progress and err is not None:
            _print_reference(run_dir, summary, err)


def _print_reference(run_dir: Any, summary: dict[str, Any], err: float) -> None:
    """The final error beside what it can be judged against: random cells of the space scored
    by the same oracle, and guessing."""
    from ..runner import reference_scores

    try:
        ref = reference_scores(run_dir)
    except NasbenchEvalError as exc:  # e.g. a space that cannot draw random cells
        click.echo(f"(no reference score: {exc})")
        return
    rand = ref["random_test_errors"]
    click.echo(f"judge it by: {len(rand)} random cells of {summary.get('space')} score "
               f"{min(rand):.4f}-{max(rand):.4f} (mean {sum(rand) / len(rand):.4f}) with the "
               f"same oracle ({ref['oracle']}); guessing scores {ref['chance_error']:.4f}")
