"""Audio input/output, STFT log-magnitude spectrograms and Griffin-Lim."""
