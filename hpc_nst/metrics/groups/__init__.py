"""Metric groups that are one module each: the report computes every registered group for
every done pair, beside its built-in groups (docs/metrics.md, "A metric of your own").

A module of this package, or a plugin module (``HPC_NST_PLUGINS``, the ``hpc_nst.plugins``
entry points), registers a :class:`MetricGroup`; its columns then appear in the report's
tables and page, in ``hpc-nst report --metrics``, and in ``hpc-nst export --report`` and its
``--where``.
"""

from hpc_nst.metrics.groups.base import (
    MetricGroup,
    MetricInputs,
    metric_groups,
    register_metric_group,
)

__all__ = ["MetricGroup", "MetricInputs", "builtin_columns", "metric_groups",
           "register_metric_group"]


def builtin_columns() -> tuple[str, ...]:
    """The columns of this package's own groups (``level``...), without loading plugins or
    the engine: the names an export reserves whether or not a plugin is loaded."""
    import importlib
    import pkgutil

    columns: list[str] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for value in vars(module).values():
            if isinstance(value, MetricGroup):
                columns.extend(value.columns)
    return tuple(dict.fromkeys(columns))
