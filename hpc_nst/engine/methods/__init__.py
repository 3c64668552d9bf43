"""Every method behind one call, one module per method, so baselines run through the same batch
engine and store: ``nst`` (the paper), ``content-copy`` / ``style-copy``, ``eq`` (a static
equaliser) and ``ulyanov`` (Ulyanov & Lebedev 2016). See :mod:`.base` to add one."""

from hpc_nst.engine.methods.base import (
    Method,
    get_method,
    passthrough_result,
    register_method,
    run_method,
)
from hpc_nst.engine.methods.eq import static_eq

__all__ = ["Method", "get_method", "passthrough_result", "register_method", "run_method",
           "static_eq"]
