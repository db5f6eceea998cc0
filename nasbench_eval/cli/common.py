"""Pieces shared by the commands: ``KEY=VALUE`` parsing, the method flags, errors, renamed options.

Method options become ``--flags`` generated from the method registry (plugins included) and
each method's option schema, so no command has per-method code, and every value, from a flag,
``-o KEY=VALUE`` or a sweep file, is parsed and checked by :mod:`nasbench_eval.options`.
"""
from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import click

from ..errors import NasbenchEvalError, did_you_mean
from ..options import Option, as_schema, flag_name, resolve_given

T = TypeVar("T")

CONTEXT = {"max_content_width": 110, "help_option_names": ["-h", "--help"]}


class Choice(click.Choice):
    """``click.Choice`` whose error for a typo also suggests the nearest choice
    (``--lr-schedule cosin`` -> did you mean 'cosine'?), as every unknown name does."""

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        try:
            return super().convert(value, param, ctx)
        except click.BadParameter as exc:
            exc.message += did_you_mean(value, [str(c) for c in self.choices])
            raise


def fail(exc: Exception) -> NoReturn:
    """An expected error (bad input, unknown name) as a one-line message, no traceback."""
    raise click.ClickException(str(exc)) from None


def run_resumable(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` for a command that writes a resumable directory (``run``,
    ``evaluate``): an expected error becomes a one-line message; Ctrl-C says how to resume
    and exits with 130."""
    try:
        return fn(*args, **kwargs)
    except (NasbenchEvalError, ValueError) as exc:
        fail(exc)
    except KeyboardInterrupt:
        click.echo("\ninterrupted: rerun the same command with --resume to continue", err=True)
        sys.exit(130)


def parse_kv(text: str, hint: str = "--option") -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it is JSON (numbers, true, lists), else text."""
    if "=" not in text:
        raise click.BadParameter(f"'{text}' is not KEY=VALUE", param_hint=hint)
    key, value = text.split("=", 1)
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip().replace("-", "_"), parsed


def registered_names() -> dict[str, list[str]]:
    """The names ``--method``, ``--space``, ``--dataset`` and ``--oracle`` accept, for the help
    of ``run`` and ``sweep`` (plugins included; their modules are loaded for the method flags
    anyway). Checked where they are used, with a suggestion for a typo."""
    from ..data import DATASETS
    from ..oracles import ORACLES
    from ..spaces.registry import builtin_spaces

    return {"method": list(method_classes()), "space": list(builtin_spaces()),
            "dataset": DATASETS.names(), "oracle": ["auto", *ORACLES.names()]}


ALPHA_LR_DEFAULT = "3e-4"
"""How ``--help`` writes the default of ``--alpha-lr`` (in ``run`` and ``sweep`` alike)."""


# ----------------------------------------------------------------------------- method flags

@dataclass
class MethodFlag:
    """One ``--flag``: an option key, its declaration and the methods that have it."""

    key: str
    option: Option
    help: str
    untyped: bool  # declared by a plain None default: the value is read as JSON, not checked
    methods: list[str] = field(default_factory=list)

    def click_type(self) -> click.ParamType:
        opt = self.option
        if opt.choices:
            return Choice([str(c) for c in opt.choices])
        if opt.type is bool:
            return Choice(["true", "false"], case_sensitive=False)
        if self.untyped or opt.none_ok:  # text, so that "none" passes; parsed by the schema
            return click.STRING
        return {int: click.INT, float: click.FLOAT}.get(opt.type, click.STRING)

    def help_text(self) -> str:
        what = "JSON value" if self.untyped else self.option.describe()
        text = f"{self.help} ({what})" if self.help else what.capitalize()
        return f"{text} [{', '.join(self.methods)}; default {self.option.default}]"

    def metavar(self) -> str | None:
        if self.option.choices or self.option.type is bool:
            return None  # click shows the choices
        name = "VALUE" if self.untyped else {int: "INTEGER", float: "FLOAT"}.get(
            self.option.type, "TEXT")
        return f"{name}|none" if self.option.none_ok and not self.untyped else name


def method_classes() -> dict[str, type]:
    """Every registered method class by name, plugins (``--plugin``,
    ``$NASBENCH_EVAL_PLUGINS``) included."""
    from ..methods import load_all
    from ..registry import load_plugins

    load_plugins()
    return dict(sorted(load_all().items()))


def collect_method_flags() -> dict[str, MethodFlag]:
    """Every option a registered method declares, as one flag (the first declaration, by
    method name, gives the type and help; the others add their method's name)."""
    flags: dict[str, MethodFlag] = {}
    for name, cls in method_classes().items():
        for key, opt in as_schema(cls.options).items():
            if key not in flags:
                flags[key] = MethodFlag(key, opt, opt.help,
                                        untyped=cls.options[key] is None)
            flags[key].methods.append(name)
    return flags


def with_method_flags(flags: dict[str, MethodFlag]) -> Callable[[Callable], Callable]:
    """Decorator: one ``--flag`` per method option (``pgd_steps`` -> ``--pgd-steps``)."""
    def deco(fn: Callable) -> Callable:
        for flag in reversed(list(flags.values())):
            fn = click.option(flag_name(flag.key), flag.key, default=None,
                              type=flag.click_type(), metavar=flag.metavar(),
                              help=flag.help_text())(fn)
        return fn

    return deco


def pop_method_flags(flags: dict[str, MethodFlag], kwargs: dict[str, Any],
                     options: tuple[str, ...]) -> dict[str, Any]:
    """The method options the user gave, from ``-o KEY=VALUE`` and the generated flags
    (removed from ``kwargs``): JSON-read ``-o`` values, typed flag values; not yet checked
    against a method (see :func:`method_options_for`)."""
    given = dict(parse_kv(o, "--option") for o in options)
    for key, flag in flags.items():
        value = kwargs.pop(key)
        if value is not None:
            given[key] = parse_kv(f"{key}={value}", flag_name(key))[1] if flag.untyped else value
    return given


def method_options_for(method: str, given: dict[str, Any]) -> dict[str, Any]:
    """``given`` parsed and checked by ``method``'s option schema (errors name the flag, the
    valid options and, for an option of other methods, which ones have it); only the given
    keys, so the run id does not change with a default."""
    if not given:
        return {}
    from ..methods import method_class
    from ..options import OptionError

    cls = method_class(method)
    for key in given:
        key = str(key).replace("-", "_")
        owners = [name for name, other in method_classes().items() if key in other.options]
        if key not in cls.options and owners:
            mine = ", ".join(flag_name(k) for k in sorted(cls.options)) or "(none)"
            raise OptionError(f"method '{method}' has no option {flag_name(key)}: it is an "
                              f"option of {', '.join(owners)} (choose one with --method); "
                              f"valid options of '{method}': {mine}")
    return resolve_given(f"method '{method}'", cls.options, given)


# ----------------------------------------------------------------------------- renamed options

def renamed_option(old: str, new: str, param: str) -> Callable[[Callable], Callable]:
    """Still accept an option's old spelling ``old`` (hidden from ``--help``): its value goes to
    ``param`` (the option ``new``), with a one-line hint on stderr. Put it below
    ``@click.command``."""
    dest = "renamed_" + old.lstrip("-").replace("-", "_")

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value = kwargs.pop(dest, None)
            if value is not None:
                click.echo(f"note: {old} is now {new} (the old spelling still works)", err=True)
                kwargs[param] = value
            return fn(*args, **kwargs)

        return click.option(old, dest, default=None, hidden=True, metavar="DIR",
                            help=f"Old spelling of {new}.")(wrapper)

    return deco
