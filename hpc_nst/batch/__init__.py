"""Dataset-scale batch engine: CSV manifest → dask (local or batch-scheduler) → one Zarr store.

- :mod:`hpc_nst.batch.manifest` reads and validates the manifest;
- :mod:`hpc_nst.batch.tasks` orders pairs and cuts them into shard-aligned tasks;
- :mod:`hpc_nst.batch.store_creation` creates the Zarr store, :mod:`hpc_nst.batch.store`
  opens and checks it, :mod:`hpc_nst.batch.record` records into it (the driver),
  :mod:`hpc_nst.batch.writer` writes its bulk data (the workers), :mod:`hpc_nst.batch.reader`
  reads it;
- :mod:`hpc_nst.batch.worker` is what runs on a dask worker (one task = one shard), and
  :mod:`hpc_nst.batch.worker_process` the worker process's own concerns;
- :mod:`hpc_nst.batch.cluster` builds the dask cluster (local, Slurm, PBS, SGE, LSF);
- :mod:`hpc_nst.batch.runner` is the driver behind ``hpc-nst run``.

The store layout is documented in ``docs/store.md``.
"""
