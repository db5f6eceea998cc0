"""``nasbench-eval list spaces|methods|datasets|oracles|sinks``: what the registries hold."""
from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from typing import Any

import click

from ..errors import NasbenchEvalError
from ..options import as_schema, flag_name
from .common import fail, method_classes

SHORT_HELP = "List the registered spaces, methods, datasets, oracles or sinks."


@click.group(name="list")
def list_() -> None:
    """List the registered spaces, methods, datasets, oracles or sinks."""


@list_.command(name="spaces")
def list_spaces() -> None:
    """Each bundled space: op sets and the number of discrete cells it holds (computed)."""
    from ..spaces.registry import builtin_spaces, load_space

    try:
        for name in builtin_spaces():
            for line in load_space(name).describe():
                click.echo(line)
    except NasbenchEvalError as exc:
        fail(exc)


def _first_line(obj: Any) -> str:
    doc = (obj.__doc__ or "").strip()
    return doc.splitlines()[0] if doc else ""


def _option_lines(options: dict[str, Any], indent: str,
                  spell: Callable[[str], str] = flag_name) -> list[str]:
    """One line per option: how to give it, type/accepted values, default, help."""
    lines = []
    for key, opt in as_schema(options).items():
        what = "JSON value" if options[key] is None else opt.describe()
        lines.append(f"{indent}{spell(key):22s} {what}; default {opt.default}"
                     + (f": {opt.help}" if opt.help else ""))
    return lines


@list_.command(name="methods")
def list_methods() -> None:
    """Each registered method (plugins included): what it does, its paper and its options
    (the flags of `run` and `sweep`, or -o KEY=VALUE)."""
    from ..methods.base import method_description
    from ..spaces import builtin_spaces, load_space

    pad = " " * 15
    spaces = [load_space(name) for name in builtin_spaces()]
    for name, cls in method_classes().items():
        click.echo(f"{name:14s} {method_description(cls)}")
        if cls.paper:
            click.echo(f"{pad}paper: {cls.paper}")
        where = (f"family {' or '.join(cls.families)} only" if cls.families
                 else "every family")
        if cls.needs:
            where += f" whose supernet provides {', '.join(cls.needs)}"
        bundled = _bundled_spaces_for(cls, spaces)
        click.echo(f"{pad}spaces: {where} (bundled: {', '.join(bundled) or 'none'})")
        if cls.options:
            click.echo(f"{pad}options (flags of run and sweep, or -o KEY=VALUE):")
            for line in _option_lines(cls.options, pad + "  "):
                click.echo(line)


def _bundled_spaces_for(cls: Any, spaces: list[Any]) -> list[str]:
    """The bundled ``spaces`` a method applies to: its family is in ``families`` (if set)
    and the family's supernet provides every call in ``needs`` (the family's declared
    ``supernet_calls``: no supernet is built, no torch imported)."""
    from ..spaces import family_of

    return [space.name for space in spaces
            if (not cls.families or space.family in cls.families)
            and set(cls.needs) <= set(family_of(space).supernet_calls)]


@list_.command(name="datasets")
def list_datasets() -> None:
    """Each dataset a run can search on, and where downloads are cached."""
    from ..data import DATASETS, default_data_root

    for name, (_, desc) in DATASETS.items():
        click.echo(f"{name:14s} {desc}")
    click.echo(f"\ndownload cache: {default_data_root()}")


@list_.command(name="oracles")
def list_oracles() -> None:
    """Each anytime oracle (`run --oracle`), with its options (`--oracle-option KEY=VALUE`)
    and the preference of `--oracle auto`."""
    from ..oracles import AUTO_ORDER, load_oracles

    pad = " " * 15
    for name, cls in sorted(load_oracles().items()):
        click.echo(f"{name:14s} {_first_line(cls) or _first_line(sys.modules[cls.__module__])}")
        if cls.about:  # provenance and caveats (declared by the Oracle base, empty by default)
            for line in textwrap.wrap(cls.about, 90):
                click.echo(f"{pad}{line}")
        if cls.options:  # declared by the Oracle base (empty by default)
            click.echo(f"{pad}options:")
            for line in _option_lines(cls.options, pad + "  ", lambda key: f"{key}="):
                click.echo(line)
    from ..data import DATASETS
    from ..spaces import builtin_spaces, family_of, load_space

    spaces = [load_space(name) for name in builtin_spaces()]
    measured = [f"{space.name} on {dataset}: {', '.join(names)}"
                for space in spaces for dataset in DATASETS
                for names in [family_of(space).measured_oracles(dataset, space.name)] if names]
    click.echo(f"\nauto: the first available of {AUTO_ORDER[0]}, the measured choice for the "
               f"space and dataset ({'; '.join(measured) or 'none'}), {AUTO_ORDER[-1]}")


@list_.command(name="sinks")
def list_sinks() -> None:
    """Each experiment-tracking sink (`run --log-to NAME[,NAME]`) and whether its package is
    installed here."""
    import importlib.util

    from ..sinks import SINKS

    for name, cls in SINKS.items():
        module = sys.modules[cls.__module__]
        have = importlib.util.find_spec(cls.package) is not None if cls.package else True
        missing = f"  [not installed: pip install 'nasbench-eval[{cls.package}]']"
        click.echo(f"{name:14s} {_first_line(module).replace('``', '')}"
                   + ("" if have else missing))
