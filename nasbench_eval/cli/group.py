"""The ``nasbench-eval`` command group: global options and the commands, loaded on demand.

Each command lives in its own module of this package and is imported only when it runs (or
its help is asked for), so ``nasbench-eval --help`` stays fast and needs no torch. ``run`` and
``sweep`` are built afresh on each lookup: their method flags come from the method registry,
which ``--plugin`` extends before the command is looked up (click parses the group's options,
and runs the eager ``--plugin`` callback, before it resolves the subcommand).
"""
from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import click

from ..errors import NasbenchEvalError
from ..registry import PLUGINS_ENV, load_plugins

# command name -> (module of this package, attribute: a click command or a function building
# one, the first paragraph of its help: `nasbench-eval --help` shortens it as click would,
# without importing the module; a test keeps it equal to the command's own)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": ("run", "build", "Run one architecture search and write runs/<run-id>/ (--out)."),
    "list": ("listing", "list_", "List the registered spaces, methods, datasets, oracles or sinks."),
    "evaluate": ("evaluate", "evaluate",
                 "Train the genotype of a finished search (RUN_DIR) from scratch and record "
                 "its test error."),
    "sweep": ("sweep", "build", "Run a grid of searches: methods x spaces x datasets x seeds."),
    "data": ("nb101", "data", "Prepare data files (benchmark tables) once."),
    "query": ("nb101", "query",
              "Print the NAS-Bench-101 table's numbers for one cell: by --hash, by --spec, or "
              "by --space with --genotype. Default: the mean over the repeats at 108 epochs."),
    "leaderboard": ("analysis", "leaderboard_cmd",
                    "Leaderboard of the runs under RESULTS: one row per (space, dataset, "
                    "method)."),
    "compare": ("analysis", "compare_cmd", "Statistical comparison of the methods in RESULTS."),
    "plot": ("analysis", "plot_cmd",
             "Figures (PNG + PDF) from the runs under RESULTS, errors in %, seeds counted in "
             "titles."),
    "fidelity": ("analysis", "fidelity_cmd",
                 "Does a study behave as the papers say? Per (space, method): parameter-free "
                 "share of the normal cell (first -> final epoch) and Hessian eigenvalue growth, "
                 "mean +- std over seeds, beside the published direction; DARTS vs SDARTS-ADV "
                 "Mann-Whitney p-values, Holm-corrected."),
}


def load_command(name: str) -> click.Command:
    """The command ``name`` (built now when its module builds it)."""
    module, attr, _ = COMMANDS[name]
    obj = getattr(importlib.import_module(f"{__package__}.{module}"), attr)
    return obj if isinstance(obj, click.Command) else obj()


def short_help(name: str, limit: int = 45) -> str:
    """The one-line help of the command ``name`` as ``--help`` lists it, without loading it."""
    return click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit)


class LazyGroup(click.Group):
    """A group whose commands are the entries of :data:`COMMANDS`, imported when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            return load_command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(n) for n in names)  # as click.Group does
        rows = [(name, short_help(name, limit) if name in COMMANDS
                 else self.commands[name].get_short_help_str(limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _plugins(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> None:
    """``--plugin``: add to ``$NASBENCH_EVAL_PLUGINS`` (which sweep workers inherit) and load
    now, before the subcommand (and its method flags) is built."""
    if not values:
        return
    entries = [e for e in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if e]
    for value in values:
        path = Path(value).expanduser()
        # files and folders as absolute paths: workers may start elsewhere (Ray)
        entry = str(path.resolve()) if path.exists() else value
        if entry not in entries:
            entries.append(entry)
    os.environ[PLUGINS_ENV] = os.pathsep.join(entries)
    try:
        load_plugins()
    except NasbenchEvalError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="nasbench-eval")
@click.option("--plugin", "plugins", multiple=True, metavar="PATH", is_eager=True,
              expose_value=False, callback=_plugins,
              help="A Python file, package folder or module that registers methods, spaces, "
                   "oracles or executors (repeatable); added to $NASBENCH_EVAL_PLUGINS.")
def main(**_: Any) -> None:
    """nasbench-eval: differentiable NAS searches, anytime scoring, results you can compare."""


if __name__ == "__main__":  # pragma: no cover
    main()
