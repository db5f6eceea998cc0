"""``nasbench-eval data import-nasbench101`` and ``query``: the NAS-Bench-101 table.

Heavy imports happen inside the commands.
"""
from __future__ import annotations

import json
from typing import Any

import click

from ..errors import NasbenchEvalError

__all__ = ["data", "import_nasbench101_cmd", "query"]


def _query_nb201(space: str, genotype: str, table: str | None, as_json: bool) -> bool:
    """Answer ``query`` for a space whose genotypes are NAS-Bench-201 cells (False: the space
    is of another family, so the NAS-Bench-101 path answers)."""
    from ..spaces.registry import family_of, load_space

    try:
        space_obj = load_space(space)
        family = family_of(space_obj)
        if not family.maps_to_nasbench201:
            return False
        text = genotype.strip()
        g = space_obj.genotype_from_dict(text if text.startswith("|") else
                                         _json_arg(text, "--genotype"))
        arch = family.nasbench201_arch(g)
        from ..oracles import nasbench201, nb201_analog

        result: dict[str, Any] = {"arch": arch}
        path = table or nasbench201.default_path(None)
        if path is not None:
            result["official"] = nasbench201.query_arch(arch, str(path))
            result["official_file"] = str(path)
        offline = nb201_analog.installed_path()
        if offline is not None:
            result["offline_cifar10_test_acc"] = nb201_analog.cifar10_accuracy(arch, str(offline))
        if len(result) == 1:
            raise NasbenchEvalError(
                f"no NAS-Bench-201 table to answer from: pass --table (the official "
                f"NATS-Bench topology file; {nasbench201.EXTRA}) or install the offline table "
                f"({nb201_analog.EXTRA})")
    except (NasbenchEvalError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return True
    click.echo(f"arch {arch}")
    if "official" in result:
        click.echo(f"official table {result['official_file']} (index "
                   f"{result['official']['index']}; accuracy in %, mean over its seeds):")
        for k, v in result["official"].items():
            if k.startswith("acc_"):
                dataset, split, ep = k[4:].rsplit("_", 2)
                click.echo(f"  {dataset:15s} {split:5s} {ep:>6s}  {v:.2f}")
    if "offline_cifar10_test_acc" in result:
        click.echo(f"offline table (analog-nasbench, its authors' own training, one run; not "
                   f"the official numbers): CIFAR-10 test {result['offline_cifar10_test_acc']:.2f}%")
    return True

_CACHE_HELP = ("Cache file (or a directory for nasbench101.npz). Default: "
               "$NASBENCH_EVAL_DATA/nasbench101/nasbench101.npz, else "
               "~/.cache/nasbench-eval/data/nasbench101/nasbench101.npz.")


@click.group(name="data")
def data() -> None:
    """Prepare data files (benchmark tables) once."""


@data.command(name="import-nasbench101")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--cache", default=None, help=_CACHE_HELP)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def import_nasbench101_cmd(path: str, cache: str | None, quiet: bool) -> None:
    """Read a NAS-Bench-101 TFRecord file (nasbench_only108.tfrecord or nasbench_full.tfrecord)
    and build the table cache that `query` and the `nasbench101` oracle read.

    No TensorFlow needed; every record's CRC is checked. Run it once: later loads take well
    under a second.
    """
    from ..nb101.table import import_nasbench101

    try:
        report = import_nasbench101(path, cache=cache, progress=not quiet)
    except NasbenchEvalError as exc:
        raise click.ClickException(str(exc)) from None
    for line in report.lines():
        click.echo(line)


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON ({exc})", param_hint=what) from None


def _fmt(x: Any) -> str:
    return f"{x:.6f}" if isinstance(x, float) else str(x)


@click.command(name="query", context_settings={"max_content_width": 110})
@click.option("--hash", "hash_", default=None, metavar="H", help="NAS-Bench-101 module hash.")
@click.option("--spec", default=None, metavar="JSON",
              help='A spec: \'{"matrix": [[0,1],[0,0]], "ops": ["input","output"]}\' '
                   "(pruned and hashed as NAS-Bench-101 does).")
@click.option("--space", default=None, help="A space whose genotypes map to NAS-Bench-101 "
                                            "cells (e.g. nb1shot1-2) or NAS-Bench-201 cells "
                                            "(nb201); with --genotype.")
@click.option("--genotype", default=None, metavar="JSON",
              help="A genotype of --space, as written in genotypes.jsonl (nb201: also a bare "
                   "architecture string |op~0|+|op~0|op~1|+...).")
@click.option("--table", default=None, metavar="PATH",
              help="nb201: the NATS-Bench topology file or folder (default: "
                   "$NASBENCH_EVAL_DATA/nats-bench/NATS-tss-v1_0-3ffb9-simple).")
@click.option("--budget", default=108, show_default=True, type=int,
              help="Epoch budget (4, 12, 36 need the full file).")
@click.option("--repeat", default=None, type=int,
              help="One training run (0-based) instead of the mean over the repeats.")
@click.option("--cache", default=None, help=_CACHE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def query(hash_: str | None, spec: str | None, space: str | None, genotype: str | None,
          table: str | None, budget: int, repeat: int | None, cache: str | None,
          as_json: bool) -> None:
    """Print the NAS-Bench-101 table's numbers for one cell: by --hash, by --spec, or by
    --space with --genotype. Default: the mean over the repeats at 108 epochs.

    With a NAS-Bench-201 space (--space nb201 --genotype ARCH): every protocol of the official
    table (--table, through nats_bench) and the offline CIFAR-10 table (analog-nasbench),
    whichever is there."""
    given = [n for n, v in (("--hash", hash_), ("--spec", spec), ("--space/--genotype",
                                                                  space or genotype)) if v]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --hash H, --spec JSON, "
                               "--space S --genotype JSON")
    if (space is None) != (genotype is None):
        raise click.UsageError("--space and --genotype go together")
    if space is not None and _query_nb201(space, genotype, table, as_json):
        return
    from ..nb101.table import load_table, spec_hash

    try:
        source: dict[str, Any] = {}
        if hash_ is not None:
            h = hash_
        elif spec is not None:
            d = _json_arg(spec, "--spec")
            h = spec_hash(d)
            source["spec"] = d
        else:
            from ..spaces.registry import family_of, load_space

            space_obj = load_space(space)
            g = space_obj.genotype_from_dict(_json_arg(genotype, "--genotype"))
            ms = family_of(space_obj).nasbench101_spec(g)  # refuses a family that does not map
            h = spec_hash(ms)
            source["spec"] = ms.to_dict()
        table = load_table(cache)
        result = table.query(h, budget=budget, repeat=repeat)
    except (NasbenchEvalError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    result.update(source)
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    n = result["repeats"]
    which = f"repeat {repeat} of {n}" if repeat is not None else f"mean over {n} repeats"
    click.echo(f"hash {result['hash']}  budget {budget} epochs  ({which})")
    if "spec" in source:
        click.echo(f"spec: {json.dumps(source['spec'])}")
    click.echo(f"test error {result['test_error']:.6f}  validation error "
               f"{result['val_error']:.6f}  train error {result['train_error']:.6f}")
    click.echo(f"training time {result['training_time']:.1f} s  parameters "
               f"{result['trainable_parameters']:,}")
    click.echo(f"halfway: test acc {_fmt(result['halfway_test_accuracy'])}  val acc "
               f"{_fmt(result['halfway_validation_accuracy'])}  train acc "
               f"{_fmt(result['halfway_train_accuracy'])}")
    per = result["per_repeat"]
    click.echo("per repeat test accuracy: " + ", ".join(_fmt(x) for x in per["test_accuracy"]))
    click.echo("per repeat validation accuracy: "
               + ", ".join(_fmt(x) for x in per["validation_accuracy"]))
