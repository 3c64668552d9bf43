"""A toy metric group registered from outside the package (loaded through HPC_NST_PLUGINS)."""

from __future__ import annotations

from hpc_nst.metrics.groups import MetricGroup, register_metric_group


def lengths(inputs):  # noqa: ANN001, ANN201
    content = inputs.content()
    out = {"toy_output_s": len(inputs.output) / inputs.sample_rate}
    if content is not None:
        out["toy_length_ratio"] = len(inputs.output) / len(content)
    return out


register_metric_group(MetricGroup("toy_metric", "output length, and against the content's",
                                  ("toy_output_s", "toy_length_ratio"), lengths))
