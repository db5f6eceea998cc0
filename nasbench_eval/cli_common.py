"""Pieces shared by the commands that start searches (``run``, ``sweep``).

Method options become ``--flags`` generated from the method registry, so no command has
per-method code, and ``KEY=VALUE`` options parse the same way everywhere.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click


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


def collect_method_flags() -> dict[str, tuple[Any, str, list[str]]]:
    """Every option a registered method declares: name -> (default, help, methods)."""
    from .methods import load_all

    flags: dict[str, tuple[Any, str, list[str]]] = {}
    for name, cls in sorted(load_all().items()):
        for opt, option in cls.options.items():
            _, help_, users = flags.get(opt, (option.default, option.help, []))
            flags[opt] = (option.default, help_, users + [name])
    return flags


METHOD_FLAGS = collect_method_flags()


def with_method_flags(fn: Callable) -> Callable:
    """Decorator: one ``--flag`` per method option (``pgd_steps`` -> ``--pgd-steps``)."""
    for opt, (default, help_, users) in reversed(list(METHOD_FLAGS.items())):
        kind = type(default) if isinstance(default, (int, float, str, bool)) else str
        fn = click.option(f"--{opt.replace('_', '-')}", opt, default=None, type=kind,
                          help=f"{help_} [{', '.join(users)}; default {default}]".strip())(fn)
    return fn


def pop_method_flags(kwargs: dict[str, Any], options: tuple[str, ...]) -> dict[str, Any]:
    """Method options from ``-o KEY=VALUE`` and the generated flags (removed from kwargs);
    untyped options (default None) arrive as text and are parsed like ``-o``."""
    method_options = dict(parse_kv(o, "--option") for o in options)
    for flag in METHOD_FLAGS:
        value = kwargs.pop(flag)
        if value is not None:
            method_options[flag] = (parse_kv(f"{flag}={value}", f"--{flag}")[1]
                                    if isinstance(value, str) else value)
    return method_options
