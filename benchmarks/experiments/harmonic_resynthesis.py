"""EXPERIMENT (did not work; kept for the next attempt): harmonic re-synthesis for issue 12.

The content's f0 (pYIN) re-synthesised as phase-continuous harmonics whose per-harmonic levels
follow the style's median note template (dB re each note's peak vs time since onset), plus
noise with the style's mean spectrum at -35 dB and the style's smooth spectral envelope.

Measured on the dev split (s256-000..007), `python benchmarks/experiments/harmonic_resynthesis.py`:
    harmonic:                         LSD 15.9, timbre_dynamics 5.89, pitch 0.352, judge 0/8
    oracle (template from the target): LSD 14.7, timbre_dynamics 5.48,              judge 0/8
    content through its own template:  LSD 18.6, timbre_dynamics 5.52               (0 ideal)
    (content-copy: LSD 17.1, timbre_dynamics 3.17, pitch 0.272)
So the synthesis itself is the bottleneck (it cannot even reproduce the content from the
content's own template): pYIN's voicing gaps at attacks and in decays cut notes, and pure
sinusoids lack the partials' width and the instruments' noise. Next: synthesise from the
content's STFT (keep its phase/partials, replace per-harmonic envelopes by masks around k*f0)
rather than from oscillators.
"""


from __future__ import annotations

import numpy as np
import torch

from hpc_nst.audio.spectrogram import complex_stft
from hpc_nst.config import JobConfig
from hpc_nst.engine.methods.notes import _content_and_style, _filtered
from hpc_nst.engine.note_envelope import FLOOR_DB, _segments, detect_onsets, envelope_eq_gains

HARMONICS = 40
RELEASE_DB = 3.0
FMIN, FMAX = 50.0, 2000.0


def pitch_track(audio: np.ndarray, sr: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """``(f0 Hz, voiced)`` per STFT frame (``1 + len // hop`` frames, centred)."""
    import librosa

    f0, voiced, _ = librosa.pyin(np.asarray(audio, np.float32), fmin=FMIN, fmax=FMAX, sr=sr,
                                 frame_length=1024, hop_length=hop, resolution=0.25)
    frames = 1 + len(audio) // hop
    f0, voiced = f0[:frames], voiced[:frames]
    return np.nan_to_num(f0, nan=0.0), voiced & np.isfinite(f0) & (f0 > 0)


def _fill(f0: np.ndarray, voiced: np.ndarray) -> np.ndarray:
    """f0 held through unvoiced frames (forward, then backward for a leading gap)."""
    out = np.where(voiced, f0, np.nan)
    idx = np.where(np.isfinite(out), np.arange(len(out)), 0)
    np.maximum.accumulate(idx, out=idx)
    out = out[idx]
    if np.isnan(out).any():
        first = np.flatnonzero(np.isfinite(out))
        out = np.where(np.isnan(out), out[first[0]] if first.size else 0.0, out)
    return out


def harmonic_levels(magnitude: np.ndarray, f0: np.ndarray, sr: int) -> np.ndarray:
    """dB level of harmonics 1..HARMONICS per frame ``(HARMONICS, frames)`` (-inf: none)."""
    n_bins, frames = magnitude.shape
    bin_hz = sr / (2 * (n_bins - 1))
    k = np.arange(1, HARMONICS + 1)[:, None]
    freq = k * f0[None, :]
    pos = freq / bin_hz
    ok = (f0[None, :] > 0) & (pos < n_bins - 2)
    lo = np.clip(np.floor(pos).astype(int), 0, n_bins - 2)
    cols = np.broadcast_to(np.arange(frames), lo.shape)
    # the peak of the three bins around the harmonic (the window's main lobe)
    peak = np.max(np.stack([magnitude[np.clip(lo + d, 0, n_bins - 1), cols]
                            for d in (-1, 0, 1, 2)]), axis=0)
    db = 20 * np.log10(np.maximum(peak, 1e-9))
    return np.where(ok, db, -np.inf)


def harmonic_template(levels: np.ndarray, onsets: np.ndarray, voiced: np.ndarray,
                      length: int) -> np.ndarray:
    """Median over notes of each harmonic's dB level re the note's peak, ``(HARMONICS, length)``."""
    frames = levels.shape[1]
    stack = np.full((max(len(onsets), 1), HARMONICS, length), np.nan)
    for n, (a, b) in enumerate(_segments(onsets, frames)):
        seg = levels[:, a:min(b, a + length)]
        if not voiced[a:b].any() or not np.isfinite(seg).any():
            continue
        rel = seg - np.nanmax(np.where(np.isfinite(seg), seg, np.nan))
        rel = np.where(np.isfinite(rel), rel, -FLOOR_DB)
        # only while the note sounds (pYIN voiced): rests and other notes' tails stay out
        stack[n, :, :seg.shape[1]] = np.where(voiced[a:a + seg.shape[1]][None, :], rel, np.nan)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            template = np.nanmedian(stack, axis=0)
    covered = np.flatnonzero(~np.isnan(template[0]))
    if not covered.size:
        return np.full((HARMONICS, length), -FLOOR_DB)
    last = int(covered[-1])
    if last < length - 1:  # beyond the longest style note: the last 100 ms slope goes on
        k = min(10, last)
        slope = np.minimum((template[:, last] - template[:, last - k]) / max(k, 1), 0.0)
        template[:, last + 1:] = template[:, last:last + 1] + slope[:, None] * np.arange(
            1, length - last)
    return np.maximum(np.nan_to_num(template, nan=-FLOOR_DB), -FLOOR_DB)


def synthesize(f0: np.ndarray, amp_db: np.ndarray, sr: int, hop: int, n: int) -> np.ndarray:
    """Phase-continuous sum of harmonics: f0 and per-harmonic dB amplitudes per frame."""
    t_frames = np.arange(len(f0)) * hop
    t = np.arange(n)
    f = np.interp(t, t_frames, f0)
    phase = 2 * np.pi * np.cumsum(f) / sr
    out = np.zeros(n)
    for k in range(amp_db.shape[0]):
        a = np.interp(t, t_frames, 10 ** (amp_db[k] / 20))
        a = np.where((k + 1) * f < sr / 2 * 0.95, a, 0.0)
        if a.max() > 0:
            out += a * np.sin((k + 1) * phase)
    return out


def harmonic_transfer(content: np.ndarray, style: np.ndarray, c_mag: np.ndarray,
                      s_mag: np.ndarray, sr: int, hop: int) -> np.ndarray:
    """The content's notes and f0 with the style's harmonic note template (audio, unscaled)."""
    from hpc_nst.engine.note_envelope import band_levels, mel_weights

    weights = mel_weights(c_mag.shape[0], sr)
    rate = sr / hop
    c_f0, c_voiced = pitch_track(content, sr, hop)
    s_f0, s_voiced = pitch_track(style, sr, hop)
    frames = c_mag.shape[1]
    c_f0, c_voiced = c_f0[:frames], c_voiced[:frames]
    c_on = detect_onsets(band_levels(c_mag, weights), rate)
    s_on = detect_onsets(band_levels(s_mag, weights), rate)
    s_levels = harmonic_levels(s_mag, s_f0[:s_mag.shape[1]], sr)
    segs = _segments(c_on, frames)
    template = harmonic_template(s_levels, s_on, s_voiced[:s_mag.shape[1]],
                                 max(b - a for a, b in segs))
    c_levels = harmonic_levels(c_mag, c_f0, sr)
    loud = np.where(np.isfinite(c_levels), c_levels, -np.inf).max(axis=0)  # strongest harmonic
    f0 = _fill(c_f0, c_voiced)
    amp = np.full((HARMONICS, frames), -200.0)
    for a, b in segs:
        if not c_voiced[a:b].any():
            continue
        head = loud[a:min(b, a + 10)]
        peak = np.max(head[np.isfinite(head)], initial=-200.0)
        level = np.where(np.isfinite(loud[a:b]), loud[a:b], -200.0)
        sounding = c_voiced[a:b] | (level > peak - 30.0)
        # the content note's own end: once it stops sounding, a fast release (RELEASE dB/frame)
        first = int(np.argmax(sounding))
        rest = sounding[first:]
        stop = first + (int(np.argmin(rest)) if not rest.all() else len(rest))
        release = np.maximum(np.arange(b - a) - stop + 1, 0) * RELEASE_DB
        amp[:, a:b] = peak + template[:, :b - a] - release
    return synthesize(f0, amp, sr, hop, len(content))


# --- the method ---------------------------------------------------------------






def harmonic(content: np.ndarray, style: np.ndarray, cfg: JobConfig) -> np.ndarray:
    """See the module docstring; silent content (no voiced frame) gives silence."""
    _, c_mag, s_mag = _content_and_style(content, style, cfg)
    audio = harmonic_transfer(content, style, c_mag, s_mag, cfg.stft.sample_rate,
                              cfg.stft.hop_length)
    h = complex_stft(torch.as_tensor(audio, dtype=torch.float32), cfg.stft).to(torch.complex128)
    h = h + _style_noise(h, s_mag, cfg)
    gain = envelope_eq_gains(h.abs().numpy(), s_mag, cfg.stft.sample_rate)[:, None]
    return _filtered(h, gain, cfg, len(content))


NOISE_DB = -35.0


def _style_noise(h: torch.Tensor, s_mag: np.ndarray, cfg: JobConfig) -> torch.Tensor:
    """Noise with the style's mean spectrum, following ``h``'s frame level at NOISE_DB."""
    gen = torch.Generator().manual_seed(0)
    n = (h.shape[-1] - 1) * cfg.stft.hop_length
    noise = complex_stft(torch.randn(n, generator=gen), cfg.stft).to(torch.complex128)
    noise = noise[:, :h.shape[-1]] / noise.abs().mean().clamp_min(1e-12)
    shape = torch.from_numpy(s_mag.mean(axis=1))
    shape = shape / shape.pow(2).mean().sqrt().clamp_min(1e-12)
    level = h.abs().pow(2).mean(0).sqrt()  # per frame
    return noise * shape[:, None] * level[None, :] * 10 ** (NOISE_DB / 20)





def main() -> None:
    import pandas as pd

    from hpc_nst.audio.io import load_audio
    from hpc_nst.config import load_job
    from hpc_nst.metrics import pitch, reference
    from hpc_nst.metrics.judge import load_judge

    cfg, judge = load_job(None), load_judge()
    root = "manifests/triplets"
    labels = pd.read_csv(f"{root}/labels.csv").set_index("pair_id")
    rows = []
    for i in range(8):  # the dev split only
        pid = f"s256-{i:03d}"
        c, s, t = (load_audio(f"{root}/audio/{pid}_{r}.flac", 16000)
                   for r in ("content", "style", "target"))
        for name, ref in (("harmonic", s), ("oracle", t), ("content-template", c)):
            o = harmonic(c, ref, cfg)
            d = reference.compare(reference.features(o, 16000, len(t)),
                                  reference.features(t, 16000))
            d["pitch"] = pitch.jaccard_distance(
                pitch.pitch_sets(reference.pad_or_truncate(o, len(t))), pitch.pitch_sets(t))
            want = judge.index(labels.loc[pid, "style_label"])
            d["judge"] = float(np.argmax(judge.probabilities(o)) == want)
            rows.append({"name": name, **d})
    print(pd.DataFrame(rows).groupby("name").mean().round(3).to_string())


if __name__ == "__main__":
    main()
