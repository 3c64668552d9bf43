"""Loss terms of the ``nst`` objective, one module per term (see :mod:`.base`)."""

from hpc_nst.engine.terms.base import (
    Current,
    TargetInputs,
    Term,
    active_terms,
    recorded_terms,
    register_term,
)

__all__ = ["Current", "TargetInputs", "Term", "active_terms", "recorded_terms", "register_term"]
