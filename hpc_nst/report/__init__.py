"""Aggregation and evaluation reports of batch stores (``hpc-nst report``)."""
