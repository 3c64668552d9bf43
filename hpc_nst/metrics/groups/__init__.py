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

__all__ = ["MetricGroup", "MetricInputs", "metric_groups", "register_metric_group"]
