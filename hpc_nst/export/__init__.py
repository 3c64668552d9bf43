"""Exporting a batch store's outputs for the people who train on them (``hpc-nst export``).

:mod:`.items` turns each done pair into an :class:`~.items.ExportItem` (its audio plus every
field a dataset user needs: pair id, input paths, labels and other manifest metadata, seed, job,
final losses, and the report's metrics when a report is given); :mod:`.formats` writes items as
plain audio files, a Hugging Face ``audiofolder``, Parquet, or WebDataset tar shards. A new
format is one function registered in :data:`.formats.FORMATS`.
"""

from hpc_nst.export.formats import FORMATS, export_store

__all__ = ["FORMATS", "export_store"]
