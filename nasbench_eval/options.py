"""Typed option schemas: one declaration per method/oracle option, from which the CLI flags,
the sweep-file validation and the method's own validation all derive.

A method declares ``options = {"pgd_steps": Option(7, int, "PGD steps", minimum=1)}``; it then
receives ``self.opts`` already parsed and checked. Values arrive from three places and are
parsed the same way: Python (typed values), ``-o KEY=VALUE`` / ``--flag VALUE`` (text) and
sweep files (TOML/JSON/YAML values). Errors name the flag the user typed (``--pgd-steps``).
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import NasbenchEvalError, did_you_mean

_TYPE_NAMES = {int: "an integer", float: "a number", str: "text", bool: "true or false"}


class OptionError(NasbenchEvalError):
    """An option value that cannot be used; the message names the flag and the valid values."""


@dataclass(frozen=True)
class Option:
    """One option: default, type, help text and the values it accepts.

    ``none_ok``: None is a valid value (e.g. "derive it from another option"); the text
    ``none``/``null`` on the command line means None. ``choices``: the only valid values.
    ``minimum``/``maximum``: inclusive bounds for numbers; ``positive``: strictly > 0.
    ``in_run_id``: the default itself enters the run id (it is written into the run's
    ``method_options`` when the user leaves it unset). Set it on an option whose default
    changed after run directories were published: a run made under the old default then
    keeps its own id and can never be resumed under the new one.
    """

    default: Any
    type: type = str
    help: str = ""
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    none_ok: bool = False
    in_run_id: bool = False

    def __post_init__(self) -> None:
        if self.type not in _TYPE_NAMES:
            raise TypeError(f"Option type must be one of int, float, str, bool, got {self.type}")

    def describe(self) -> str:
        """Short text for ``--help`` and ``list``: the type and the accepted values."""
        if self.choices:
            return "|".join(str(c) for c in self.choices)
        parts = [_TYPE_NAMES[self.type]]
        if self.positive:
            parts.append("> 0")
        if self.minimum is not None:
            parts.append(f">= {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        if self.none_ok:
            parts.append("or none")
        return " ".join(parts)

    def parse(self, value: Any, flag: str) -> Any:
        """``value`` (typed, or text from the command line) as this option's type, checked."""
        if isinstance(value, str) and self.type is not str:
            text = value.strip()
            if self.none_ok and text.lower() in ("none", "null"):
                return None
            if self.type is bool:
                low = text.lower()
                if low in ("true", "1", "yes", "on"):
                    value = True
                elif low in ("false", "0", "no", "off"):
                    value = False
                else:
                    raise OptionError(f"{flag}: expected true or false, got {value!r}")
            else:
                try:
                    value = json.loads(text)
                except ValueError:
                    try:
                        value = float(text)  # nan, inf
                    except ValueError:
                        raise OptionError(f"{flag}: expected {self.describe()}, got "
                                          f"{value!r}") from None
        if value is None:
            if self.none_ok:
                return None
            raise OptionError(f"{flag}: expected {self.describe()}, got none")
        if self.type is str and isinstance(value, str) and self.none_ok and \
                value.lower() in ("none", "null"):
            return None
        if self.type is bool:
            if not isinstance(value, bool):
                raise OptionError(f"{flag}: expected true or false, got {value!r}")
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise OptionError(f"{flag}: expected {self.describe()}, got {value!r}")
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise OptionError(f"{flag}: expected {self.describe()}, got {value!r}")
            if not math.isfinite(value):
                raise OptionError(f"{flag}: expected a finite number, got {value!r}")
            value = float(value) if not isinstance(value, int) else value
        elif not isinstance(value, str):
            raise OptionError(f"{flag}: expected text, got {value!r}")
        if self.choices is not None and value not in self.choices:
            raise OptionError(f"{flag}: expected one of {', '.join(map(str, self.choices))}, "
                              f"got {value!r}")
        if self.type in (int, float):
            if self.positive and not value > 0:
                raise OptionError(f"{flag}: expected a number > 0, got {value!r}")
            if self.minimum is not None and value < self.minimum:
                raise OptionError(f"{flag}: expected {self.describe()}, got {value!r}")
            if self.maximum is not None and value > self.maximum:
                raise OptionError(f"{flag}: expected {self.describe()}, got {value!r}")
        return value


Schema = Mapping[str, Option]


def flag_name(key: str) -> str:
    """The command-line spelling of an option key: ``pgd_steps`` -> ``--pgd-steps``."""
    return "--" + key.replace("_", "-")


def resolve_options(owner: str, schema: Schema, given: Mapping[str, Any],
                    spell: Callable[[str], str] = flag_name) -> dict[str, Any]:
    """Defaults of ``schema`` overridden by ``given``, every value parsed and checked.

    ``owner`` names the method/oracle in the message for an option it does not have, which
    lists the valid ones (and the nearest, for a typo). Keys may be spelled with dashes
    (``pgd-steps``). ``spell`` writes a key as the user gives it in messages: a flag
    (``--pgd-steps``, the default) or e.g. ``--oracle-option train_epochs``."""
    schema = as_schema(schema)
    out = {k: opt.default for k, opt in schema.items()}
    for raw_key, value in given.items():
        key = str(raw_key).replace("-", "_")
        if key not in schema:
            raise OptionError(f"{owner} has no option {spell(key)}; valid options: "
                              f"{', '.join(spell(k) for k in sorted(schema)) or '(none)'}"
                              + did_you_mean(spell(key), [spell(k) for k in schema]))
        out[key] = schema[key].parse(value, spell(key))
    return out


def as_option(value: Any) -> Option:
    """An :class:`Option` as is; a plain default (the pre-schema form) as an Option of its type
    (None: text that may be none)."""
    if isinstance(value, Option):
        return value
    if value is None:
        return Option(None, str, none_ok=True)
    kind = type(value) if isinstance(value, (int, float, str, bool)) else str
    return Option(value, kind)


def as_schema(options: Mapping[str, Any]) -> dict[str, Option]:
    return {k: as_option(v) for k, v in options.items()}


def defaults(schema: Schema) -> dict[str, Any]:
    return {k: as_option(opt).default for k, opt in schema.items()}


def resolve_given(owner: str, options: Mapping[str, Any], given: Mapping[str, Any],
                  spell: Callable[[str], str] = flag_name) -> dict[str, Any]:
    """Only the ``given`` options, parsed and checked against ``options`` (a schema or plain
    defaults), keys with underscores; the defaults are not added.

    For callers that pass the result on as ``method_options``, whose content is part of the
    run id: an option left at its default must stay absent. An option declared by a plain
    ``None`` default (untyped, before its method declares an :class:`Option`) is passed on as
    given."""
    norm = {str(k).replace("-", "_"): v for k, v in given.items()}
    untyped = {k: v for k, v in norm.items() if k in options and options[k] is None}
    parsed = resolve_options(owner, options, {k: v for k, v in norm.items() if k not in untyped},
                             spell)
    return {k: untyped[k] if k in untyped else parsed[k] for k in norm}


__all__ = ["Option", "OptionError", "Schema", "as_option", "as_schema", "defaults", "flag_name",
           "resolve_given", "resolve_options"]
