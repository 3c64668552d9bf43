"""Training the instrument classifier: data sources, spectrogram cache, trainer, classify."""
