"""hpc_nst: neural style transfer on audio spectrograms (Verma & Smith 2017) at dataset scale."""

__version__ = "0.1.0"
