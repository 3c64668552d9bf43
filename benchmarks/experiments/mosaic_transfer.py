"""Dev experiment (not shipped; docs/quality.md "Audio mosaicing"): NMF-inspired audio
mosaicing (Driedger, Praetzlich & Mueller, ISMIR 2015, "Let it Bee") with the style and its
pitch-shifted copies (MOS_SHIFT semitones each way) as the corpus of frames; registers the
method ``mosaic`` in-process and runs ``benchmarks/quality_dev.py`` with the arguments given:

    echo 'method = "mosaic"' > /tmp/mosaic.toml
    MOS_WHITEN=1 MOS_P=2 python benchmarks/experiments/mosaic_transfer.py \
        --triplets /tmp/devsuite/dev3 --split all --job /tmp/mosaic.toml \
        --judge hpc_nst/assets/judge-2sf.npz

Knobs (environment): MOS_L iterations (40), MOS_R repetition neighbourhood (3), MOS_P
polyphony (5), MOS_C continuity kernel (3), MOS_SHIFT (12), MOS_WHITEN=1 matches frames
divided by their smooth spectral envelope (MOS_WBINS bins wide, 31) so that frames are chosen
by pitch, not by the content instrument's envelope.
"""
import os
import sys
from pathlib import Path

import numpy as np
import scipy.ndimage as ndi

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hpc_nst.engine.methods.base import per_pair_method  # noqa: E402
from hpc_nst.engine.transfer import at_peak_of  # noqa: E402

SR, NFFT, HOP = 16000, 1024, 256
E = os.environ.get
L_ITER, R, P, C = (int(E(k, d)) for k, d in (("MOS_L", "40"), ("MOS_R", "3"), ("MOS_P", "5"),
                                            ("MOS_C", "3")))
SHIFTS = range(-int(E("MOS_SHIFT", "12")), int(E("MOS_SHIFT", "12")) + 1)
WHITEN = E("MOS_WHITEN", "0") == "1"


def stft(x):
    import librosa
    return librosa.stft(np.asarray(x, np.float32), n_fft=NFFT, hop_length=HOP)


def corpus(style):
    import librosa
    frames = []
    for k in SHIFTS:
        y = style if k == 0 else librosa.effects.pitch_shift(style, sr=SR, n_steps=k)
        frames.append(stft(y))
    return np.concatenate(frames, axis=1)  # (bins, M) complex


def whiten(mag):
    """Each frame divided by its smooth spectral envelope (cepstral-ish: a wide moving average
    over bins), so matching is by pitch/harmonic pattern, not by the instrument's EQ."""
    env = ndi.uniform_filter1d(mag, size=int(E("MOS_WBINS", "31")), axis=0) + 1e-6
    return mag / env


def mosaic(content, style):
    V = np.abs(stft(content)).astype(np.float64)
    Wc = corpus(style)
    W = np.abs(Wc).astype(np.float64)
    keep = W.sum(0) > 1e-3 * W.sum(0).max()  # drop silent frames of the corpus
    Wc, W = Wc[:, keep], W[:, keep]
    Vm, Wm = (whiten(V), whiten(W)) if WHITEN else (V, W)
    Vm = Vm * (V.sum(0) / np.maximum(Vm.sum(0), 1e-9))  # (whitened frames keep their level)
    Wm = Wm * (W.sum(0) / np.maximum(Wm.sum(0), 1e-9))
    norms = np.linalg.norm(Wm, axis=0) + 1e-9
    Wn = Wm / norms
    rng = np.random.default_rng(0)
    M, N = Wn.shape[1], V.shape[1]
    H = rng.random((M, N))
    denom = Wn.sum(0)[:, None] + 1e-9
    diag = np.eye(C)
    for ell in range(L_ITER):
        fac = 1 - (ell + 1) / L_ITER
        if ell < L_ITER - 1:
            mx = ndi.maximum_filter(H, size=(1, 2 * R + 1))
            H = np.where(H < mx, H * fac, H)
            if P < M:
                kth = -np.partition(-H, P - 1, axis=0)[P - 1]
                H = np.where(H < kth[None, :], H * fac, H)
            H = ndi.convolve(H, diag, mode="constant")
        WH = Wn @ H + 1e-9
        H = H * (Wn.T @ (Vm / WH)) / denom
    Y = (Wc / norms) @ H  # complex style frames, weighted
    import librosa
    audio = librosa.istft(Y.astype(np.complex64), hop_length=HOP, length=len(content))
    return audio.astype(np.float32)


def transfer(content, style, cfg):
    return at_peak_of(mosaic(content, style), content)


per_pair_method("mosaic", "experiment: NMF audio mosaicing", transfer)

if __name__ == "__main__":
    import quality_dev
    quality_dev.main()
