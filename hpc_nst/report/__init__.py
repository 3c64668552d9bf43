"""Aggregation and evaluation reports of batch stores (``hpc-nst report``)."""

#: The report folder's record of the stores it covers (label, resolved path, method, job
#: digest), so that an export's ``--report`` takes the rows of its own store, not of another
#: store with the same label (two stores named ``s.zarr``) or an earlier one at the same path.
STORES_NAME = "stores.json"
