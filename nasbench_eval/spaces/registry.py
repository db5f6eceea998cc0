"""The space-family registry and the spec files: ``load_space("s3")`` or any ``.toml`` path.

A spec is data, so a user adds a space by adding a file (or passing a path); its ``family``
field selects the :class:`~.base.SpaceFamily` that parses it. Families register on import:
the folders of this package (``darts/``, ``nb101/``) and any plugin folder named in
``$NASBENCH_EVAL_PLUGINS`` (see :mod:`nasbench_eval.registry`). Every problem is reported with
the file, the field and what would be valid, because a typo in a spec is the most common way
a search silently explores the wrong space.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..errors import SpecError, unknown
from ..registry import Registry
from .base import Space, SpaceFamily

FAMILIES: Registry[SpaceFamily] = Registry(
    "space family", "nasbench_eval.spaces",
    skip_modules=("base", "registry", "supernet", "spec", "genotype", "ops", "eval_network"))
"""Family name -> its :class:`SpaceFamily` instance."""

F = TypeVar("F", bound=type)


def register_family(cls: F) -> F:
    """Class decorator: register one instance of a :class:`SpaceFamily` subclass."""
    if not (isinstance(cls, type) and issubclass(cls, SpaceFamily)):
        raise TypeError(f"register_family expects a SpaceFamily subclass, got {cls!r}")
    FAMILIES.register(cls())
    return cls


def get_family(name: str) -> SpaceFamily:
    """The family called ``name`` (unknown: an error listing the registered ones)."""
    return FAMILIES.get(name)


def family_of(obj: Space | Any) -> SpaceFamily:
    """The family of a space object or a genotype (both carry their family's name)."""
    return FAMILIES.get(obj.family)


# ============================================================================ spec files

def spec_dir() -> Path:
    """Where the bundled specs are: inside the wheel, or ``spaces/`` of a source checkout."""
    here = Path(__file__).resolve().parent.parent
    bundled = here / "_spec_files"
    if bundled.is_dir():
        return bundled
    return here.parent / "spaces"


def builtin_spaces() -> dict[str, Path]:
    return {p.stem: p for p in sorted(spec_dir().glob("*.toml"))}


def parse_spec(data: dict[str, Any], file: str) -> Space:
    """Validate a parsed TOML document and build the space object of its family."""
    if "family" not in data:
        raise SpecError(file, "family", "missing (required)")
    family = data["family"]
    if not isinstance(family, str) or family not in FAMILIES:
        raise SpecError(file, "family", f"unknown family {family!r}; valid families: "
                                        f"{', '.join(FAMILIES.names())}")
    if "name" not in data:
        raise SpecError(file, "name", "missing (required)")
    if not (isinstance(data["name"], str) and data["name"].strip() != ""):
        raise SpecError(file, "name", "must be a non-empty string")
    return FAMILIES.get(family).parse(data, file)


def load_spec_file(path: str | Path) -> Space:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpecError(str(path), "<file>", f"cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(str(path), "<toml>", f"not valid TOML: {exc}") from None
    return parse_spec(data, str(path))


@lru_cache(maxsize=None)
def _load_builtin(name: str) -> Space:
    return load_spec_file(builtin_spaces()[name])


def load_space(name_or_path: str | Path) -> Space:
    """A bundled space by name (``s3``) or any spec file by path."""
    key = str(name_or_path)
    if key in builtin_spaces():
        return _load_builtin(key)
    if key.endswith(".toml") or Path(key).is_file():
        return load_spec_file(key)
    raise unknown("space", key, builtin_spaces())


__all__ = ["FAMILIES", "builtin_spaces", "family_of", "get_family", "load_space",
           "load_spec_file", "parse_spec", "register_family", "spec_dir"]
