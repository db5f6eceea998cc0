"""One registry type for every extension point (methods, oracles, space families, datasets,
sweep executors), in the spirit of timm's model registry: add a thing = add a file.

A :class:`Registry` maps a name to an entry. Entries register themselves when their module is
imported (``@REGISTRY.register`` on a class with a ``name``, or ``REGISTRY.add(name, obj)``);
the registry imports the modules of its home package on first lookup, and the files or modules
named in ``NASBENCH_EVAL_PLUGINS`` (see :func:`load_plugins`), so a method, space family or
oracle defined outside the package is found by every command, sweep worker included.
"""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from .errors import NasbenchEvalError, UnknownNameError

T = TypeVar("T")

PLUGINS_ENV = "NASBENCH_EVAL_PLUGINS"
"""``os.pathsep``-separated Python files or importable module names, loaded before any
registry lookup. ``nasbench-eval --plugin FILE`` sets it (so sweep workers inherit it)."""

_loaded_plugins: set[str] = set()


def load_plugins(spec: str | None = None) -> list[str]:
    """Import the plugin files/modules named in ``spec`` (default: ``$NASBENCH_EVAL_PLUGINS``).

    Each is imported once per process; a file is imported under a module name derived from its
    path, so its ``@register`` decorators run. Returns the entries loaded now."""
    spec = os.environ.get(PLUGINS_ENV, "") if spec is None else spec
    loaded = []
    for entry in (e.strip() for e in spec.split(os.pathsep)):
        if not entry or entry in _loaded_plugins:
            continue
        _loaded_plugins.add(entry)
        try:
            if entry.endswith(".py") or os.sep in entry:
                path = Path(entry).expanduser().resolve()
                if path.is_dir():  # a package folder (e.g. a space family): its __init__.py
                    path = path / "__init__.py"
                if not path.is_file():
                    raise NasbenchEvalError(f"plugin {entry} does not exist (from --plugin or "
                                            f"${PLUGINS_ENV}; a .py file or a package folder)")
                stem = path.parent.name if path.name == "__init__.py" else path.stem
                mod_name = f"nasbench_eval_plugin_{stem}"
                module_spec = importlib.util.spec_from_file_location(
                    mod_name, path, submodule_search_locations=(
                        [str(path.parent)] if path.name == "__init__.py" else None))
                assert module_spec is not None and module_spec.loader is not None
                module = importlib.util.module_from_spec(module_spec)
                sys.modules[mod_name] = module
                module_spec.loader.exec_module(module)
            else:
                importlib.import_module(entry)
        except NasbenchEvalError:
            _loaded_plugins.discard(entry)
            raise
        except Exception as exc:  # a broken plugin is the user's to fix: say which one
            _loaded_plugins.discard(entry)
            raise NasbenchEvalError(f"plugin {entry} failed to import: "
                                    f"{type(exc).__name__}: {exc}") from exc
        loaded.append(entry)
    return loaded


class Registry(Generic[T]):
    """Name -> entry, filled by imports of ``package``'s modules (and plugins) on first use.

    ``kind`` names the thing in messages ("method", "oracle", ...): an unknown name lists the
    valid ones and suggests the nearest.
    """

    def __init__(self, kind: str, package: str | None = None,
                 skip_modules: tuple[str, ...] = ("base",)) -> None:
        self.kind, self.package, self.skip = kind, package, skip_modules
        self._entries: dict[str, T] = {}
        self._imported = False

    # -- filling
    def add(self, name: str, entry: T) -> T:
        if name in self._entries and self._entries[name] is not entry:
            raise RuntimeError(f"{self.kind} name '{name}' registered twice")
        self._entries[name] = entry
        return entry

    def register(self, entry: T) -> T:
        """Class decorator: register under the class's ``name`` attribute."""
        name = getattr(entry, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"a registered {self.kind} needs a non-empty class attribute 'name'")
        return self.add(name, entry)

    def _import_all(self) -> None:
        if not self._imported:
            if self.package is not None:  # a failing import leaves the flag unset: it is
                pkg = importlib.import_module(self.package)  # raised again on the next lookup
                for mod in pkgutil.iter_modules(pkg.__path__):
                    if mod.name not in self.skip and not mod.name.startswith("_"):
                        importlib.import_module(f"{self.package}.{mod.name}")
            self._imported = True
        load_plugins()

    # -- lookup
    def all(self) -> dict[str, T]:
        self._import_all()
        return dict(self._entries)

    def names(self) -> list[str]:
        return sorted(self.all())

    def get(self, name: str) -> T:
        entries = self.all()
        if name not in entries:
            raise self.unknown(name)
        return entries[name]

    def unknown(self, name: str, extra_valid: tuple[str, ...] = ()) -> UnknownNameError:
        return unknown_name(self.kind, name, [*self.names(), *extra_valid])

    def __contains__(self, name: object) -> bool:
        return name in self.all()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.all())

    def items(self):
        return sorted(self.all().items())


def unknown_name(kind: str, name: str, valid: list[str] | tuple[str, ...]) -> UnknownNameError:
    """The error for an unknown name: the valid choices and, when one is close, a suggestion."""
    return UnknownNameError(kind, name, valid)


def lazy(fn: Callable[[], T]) -> Callable[[], T]:
    """Cache a zero-argument factory (for registries built from data on first use)."""
    cache: list[T] = []

    def get() -> T:
        if not cache:
            cache.append(fn())
        return cache[0]

    return get


__all__ = ["PLUGINS_ENV", "Registry", "lazy", "load_plugins", "unknown_name"]
