"""Named registries of pluggable parts (methods, loss terms), filled by the modules themselves.

A :class:`Registry` knows the package that holds the built-in entries; the first lookup imports
every module of that package (each registers itself on import) and then the plugins named in the
``HPC_NST_PLUGINS`` environment variable (comma-separated module names; dask workers inherit
it, so a plugin registered this way also exists on every worker) and the ``hpc_nst.plugins``
entry-point group. Adding a method or a loss term is therefore one new module.

The registries live here, at the bottom of the package, so that :mod:`hpc_nst.config` can
validate names without importing the engine: the package is imported by name, on demand.
"""

from __future__ import annotations

import importlib
import logging
import os
import pkgutil
import threading
from collections.abc import Iterator
from importlib import metadata
from typing import Generic, TypeVar

from hpc_nst.errors import RegistryError, did_you_mean

log = logging.getLogger(__name__)
T = TypeVar("T")
PLUGINS_ENV = "HPC_NST_PLUGINS"
_plugins_loaded = False
_plugins_error: RegistryError | None = None  # a plugin's failure, raised again on every lookup
#: Discovery imports modules; a second thread (two tasks on one worker) waits for the first
#: instead of seeing a half-filled registry. Reentrant: an imported module may look names up.
_DISCOVERY_LOCK = threading.RLock()


def load_plugins() -> list[str]:
    """Import the plugin modules (``HPC_NST_PLUGINS`` and entry points) once; return their
    names. A plugin that fails to import is an error naming it."""
    global _plugins_loaded, _plugins_error
    with _DISCOVERY_LOCK:
        if _plugins_error is not None:  # the same clear error, not a half-loaded registry
            raise _plugins_error
        if _plugins_loaded:
            return []
        _plugins_loaded = True
        try:
            return _import_plugins()
        except RegistryError as exc:
            _plugins_error = exc
            raise
        except Exception:  # a built-in module failing (each plugin's error is named above):
            _plugins_loaded = False  # an installation problem, with its traceback, not called
            raise  # a plugin's


def _import_package(package: str) -> None:
    """Import every module of ``package`` (each registers its entries on import)."""
    pkg = importlib.import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def _import_plugins() -> list[str]:
    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    try:
        eps = list(metadata.entry_points(group="hpc_nst.plugins"))
    except Exception:  # pragma: no cover - broken metadata of some other distribution
        eps = []
    if names or eps:  # the built-in entries first, of every registry: a plugin that
        # overrides one (``replace=True``) must come after it, whichever is looked up first
        for package in BUILTIN_PACKAGES:  # (without plugins, nothing to order: an export
            _import_package(package)  # reading metric columns does not import torch)
    for name in names:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
                raise RegistryError(f"{PLUGINS_ENV}: cannot import plugin module {name!r} "
                                    f"({exc}); check the name and that it is on PYTHONPATH") \
                    from None
            raise RegistryError(f"{PLUGINS_ENV}: plugin module {name!r} failed on import: a "
                                f"module it imports is missing ({exc}); install it") from None
        except Exception as exc:
            raise RegistryError(f"{PLUGINS_ENV}: plugin module {name!r} failed on import "
                                f"({type(exc).__name__}: {exc}); fix it, or remove it from "
                                f"{PLUGINS_ENV}") from exc
        log.debug("loaded plugin %s", name)
    for ep in eps:
        dist = getattr(ep.dist, "name", None) or "?"
        try:
            ep.load()
        except Exception as exc:
            raise RegistryError(f"hpc_nst.plugins entry point {ep.name!r} = {ep.value!r} (of "
                                f"the installed distribution {dist!r}) failed on load "
                                f"({type(exc).__name__}: {exc}); fix or uninstall {dist}") \
                from exc
        names.append(ep.value)
    return names


class Registry(Generic[T]):
    """``name -> entry`` for one kind of part (``kind`` is used in messages)."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind, self.package = kind, package
        self._entries: dict[str, T] = {}
        self._discovered = self._discovering = False

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add ``entry`` under ``name``; a second entry of the same name is refused unless
        ``replace`` (tests and plugins overriding a built-in say so explicitly)."""
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise RegistryError(f"{self.kind} name {name!r}: use letters, digits, '-' and '_'")
        if name in self._entries and not replace and self._entries[name] is not entry:
            raise RegistryError(f"{self.kind} {name!r} is registered twice "
                                f"({self._entries[name]!r}, then {entry!r}); give one of "
                                "them another name, or register the one that overrides the "
                                "other with replace=True")
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def _discover(self) -> None:
        """Import the built-in modules and the plugins, once. Other threads wait until it is
        complete; a lookup made by a module being imported (this thread) sees what is
        registered so far."""
        if self._discovered:
            return
        with _DISCOVERY_LOCK:
            if self._discovered or self._discovering:
                return
            self._discovering = True
            try:
                _import_package(self.package)
                load_plugins()
                self._discovered = True
            finally:
                self._discovering = False

    def names(self) -> tuple[str, ...]:
        self._discover()
        return tuple(sorted(self._entries))

    def get(self, name: str, key: str | None = None) -> T:
        """The entry called ``name``; unknown names are a :class:`RegistryError` naming
        ``key`` (the config key that holds the name) and every valid choice."""
        self._discover()
        try:
            return self._entries[name]
        except KeyError:
            where = f"{key}: " if key else ""
            raise RegistryError(f"{where}unknown {self.kind} {name!r}"
                                f"{did_you_mean(name, self._entries)} (choose from: "
                                f"{', '.join(sorted(self._entries))}; a plugin's "
                                f"{self.kind} is registered once its module is loaded: "
                                f"{PLUGINS_ENV}=<module>, docs/architecture.md)") from None

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


#: The packages of the built-in entries, imported before any plugin.
BUILTIN_PACKAGES = ("hpc_nst.engine.methods", "hpc_nst.engine.terms", "hpc_nst.metrics.groups")
#: Methods (``method = ...`` of a job): :class:`hpc_nst.engine.methods.base.Method` entries.
METHODS: Registry = Registry("method", "hpc_nst.engine.methods")
#: Loss terms of the ``nst`` objective: :class:`hpc_nst.engine.terms.base.Term` entries.
TERMS: Registry = Registry("loss term", "hpc_nst.engine.terms")
#: The report's metric groups beyond its own: :class:`hpc_nst.metrics.groups.MetricGroup`.
METRIC_GROUPS: Registry = Registry("metric group", "hpc_nst.metrics.groups")
