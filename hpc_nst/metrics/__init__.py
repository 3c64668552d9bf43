"""Evaluation metrics of transfers (spectral shape, loss values, ground-truth distances)."""
