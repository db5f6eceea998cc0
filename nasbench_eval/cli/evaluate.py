"""``nasbench-eval evaluate``: a thin click layer over :func:`nasbench_eval.evaluation.evaluate`."""
from __future__ import annotations

from typing import Any

import click

from ..config import DEFAULT_OUT
from .common import CONTEXT, run_resumable


@click.command(name="evaluate", context_settings=CONTEXT)
@click.argument("run_dir", required=False, type=click.Path(file_okay=False))
@click.option("--genotype", "genotype_json", metavar="JSON",
              help="Evaluate this genotype instead of a run's: JSON text or a path to a JSON "
                   "file (a genotype, a genotypes.jsonl line or a summary.json).")
@click.option("--space", help="Space of --genotype (name or spec .toml): parses another "
                               "family's genotype and picks the space's defaults (S1-S4: 8 cells "
                               "/ 16 channels on CIFAR-100 and SVHN).")
@click.option("--dataset", help="Dataset to train on [default: the run's, else cifar10].")
@click.option("--epochs", type=int, help="[default: 600 on CIFAR/SVHN; 50 digits, fashion-mnist].")
@click.option("--layers", type=int, help="Cells [default: 20; 8 for CIFAR-100/SVHN on S1-S4 "
                                         "and for the small data sets].")
@click.option("--channels", type=int, help="Initial channels [default: 36; 16 where layers is 8].")
@click.option("--batch-size", type=int, help="[default: 96; digits 64].")
@click.option("--cutout", type=int, help="Cutout square side, 0 = off [default: 16; half the "
                                         "image side on small data sets].")
@click.option("--drop-path", type=float, help="Final drop-path probability, ramped linearly "
                                              "from 0 [default: 0.2].")
@click.option("--auxiliary", type=float, help="Weight of the auxiliary head's loss, 0 = no "
                                              "head [default: 0.4].")
@click.option("--lr", type=float, help="Initial learning rate, cosine to 0 [default: 0.025].")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--max-steps-per-epoch", type=int, help="Cap steps per epoch (quick looks).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N.")
@click.option("--out", default=DEFAULT_OUT, show_default=True,
              help="Where the directory of a --genotype evaluation is made.")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help="Torch CPU threads [default: $NASBENCH_EVAL_THREADS, else $OMP_NUM_THREADS, "
                   "else 1].")
@click.option("--data-root", help="Dataset cache (default $NASBENCH_EVAL_DATA or "
                                  "~/.cache/nasbench-eval/data).")
@click.option("--resume", is_flag=True, help="Continue this evaluation from its last finished epoch.")
@click.option("--quiet", is_flag=True, help="No per-epoch lines.")
def evaluate(run_dir: str | None, genotype_json: str | None, space: str | None, resume: bool,
             quiet: bool, threads: int | None, **settings: Any) -> None:
    """Train the genotype of a finished search (RUN_DIR) from scratch and record its test error.

    Writes RUN_DIR/evaluation.json (per-epoch train/test error, final test error, parameter
    count, multiply-adds, settings, environment), or OUT/eval-<dataset>-seed<seed>-<hash>/ for
    --genotype. Defaults are the papers' evaluation protocol (docs/evaluation.md).

    \b
    nasbench-eval evaluate runs/darts-s3-cifar10-seed0-1a2b3c4d
    nasbench-eval evaluate RUN_DIR --dataset cifar100            # transfer
    nasbench-eval evaluate --genotype darts_v2.json --dataset cifar10 --device cuda
    nasbench-eval evaluate RUN_DIR --resume                       # after an interruption
    """
    from ..evaluation import evaluate as run_evaluation, read_evaluation

    if (run_dir is None) == (genotype_json is None):
        raise click.UsageError("give either RUN_DIR or --genotype JSON (exactly one)")
    from ..execution import set_threads

    line = run_resumable(set_threads, threads)
    if not quiet:
        click.echo(line, err=True)
    out_dir = run_resumable(run_evaluation, run_dir, genotype=genotype_json, space=space,
                            resume=resume, progress=not quiet, **settings)
    doc = read_evaluation(out_dir) or {}
    click.echo(f"evaluation: {out_dir / 'evaluation.json'}")
    click.echo(f"status: {doc.get('status')}  epochs: {doc.get('epochs_done')}/{doc.get('epochs')}"
               f"  wall time: {doc.get('wall_time_s')} s")
    click.echo(f"params: {doc.get('params', 0) / 1e6:.3f}M (with auxiliary head "
               f"{doc.get('params_with_auxiliary', 0) / 1e6:.3f}M)  multiply-adds: "
               f"{doc.get('macs', 0) / 1e6:.1f}M")
    if doc.get("status") == "diverged":
        click.echo(f"diverged: {doc.get('error')}")
    elif doc.get("final_test_error") is not None:
        click.echo(f"final test error: {doc['final_test_error']:.4f}  (best "
                   f"{doc['best_test_error']:.4f})")

