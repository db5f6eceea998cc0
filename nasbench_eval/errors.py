"""Exceptions with messages meant for the person at the terminal.

Every user-facing failure (bad name, malformed spec, missing data) raises a subclass of
:class:`NasbenchEvalError`; the CLI turns it into a one-line error without a traceback.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class NasbenchEvalError(Exception):
    """Base class of errors caused by user input or the environment, not by a bug."""


class SpecError(NasbenchEvalError):
    """A search-space spec file is malformed; the message names the file and the field."""

    def __init__(self, file: str, field: str, problem: str):
        self.file, self.field, self.problem = file, field, problem
        super().__init__(f"{file}: field '{field}': {problem}")


def did_you_mean(name: object, valid: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` when one of ``valid`` is close to ``name`` (a typo), else ``""``:
    appended to every message about an unknown name, so ``dartz`` points at ``darts``."""
    near = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean '{near[0]}'?)" if near else ""


class UnknownNameError(NasbenchEvalError):
    """A name (method, space, dataset, op, ...) is not registered; lists the valid ones and
    suggests the nearest."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} '{name}'; valid choices: {', '.join(self.valid)}"
                         + did_you_mean(name, self.valid))


class DataUnavailableError(NasbenchEvalError):
    """A dataset is neither on disk nor downloadable (e.g. offline)."""


class RunDirError(NasbenchEvalError):
    """A run directory is in a state that the requested action cannot use."""


def unknown(kind: str, name: str, valid: Iterable[str]) -> UnknownNameError:
    return UnknownNameError(kind, name, valid)
