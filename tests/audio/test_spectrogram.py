import numpy as np
import torch

from hpc_nst.audio.griffin_lim import griffin_lim
from hpc_nst.audio.spectrogram import (
    complex_stft,
    inverse_stft,
    log_magnitude,
    magnitude_from_log,
    num_frames,
)
from hpc_nst.config import STFTConfig
from tests.conftest import harmonic_tone

STFT = STFTConfig()


def test_paper_geometry_257_by_257():
    x = torch.randn(40960)
    spec = log_magnitude(x, STFT)
    assert spec.shape == (257, 257) == (STFT.n_bins, num_frames(40960, STFT))


def test_log_magnitude_of_silence_is_zero_and_finite():
    spec = log_magnitude(torch.zeros(2, 1600), STFT)
    assert torch.equal(spec, torch.zeros_like(spec))
    assert torch.equal(magnitude_from_log(spec), spec)


def test_sine_peaks_at_its_bin():
    t = torch.arange(16000) / 16000
    spec = log_magnitude(torch.sin(2 * torch.pi * 1000 * t), STFT)
    assert int(spec[:, 50].argmax()) == round(1000 / (16000 / 512))


def test_stft_roundtrip_and_log_inverse():
    x = torch.as_tensor(harmonic_tone(220, 0.5))
    assert torch.allclose(inverse_stft(complex_stft(x, STFT), STFT, len(x)), x, atol=1e-5)
    mag = complex_stft(x, STFT).abs()
    assert torch.allclose(magnitude_from_log(torch.log1p(mag)), mag, rtol=1e-4, atol=1e-5)


def test_griffin_lim_converges_on_real_signal():
    x = torch.as_tensor(harmonic_tone(196, 1.0))[None]
    mag = complex_stft(x, STFT).abs()
    sc = [
        float(
            griffin_lim(mag, STFT, x.shape[-1], iterations=n, momentum=0.99).spectral_convergence[0]
        )
        for n in (2, 10, 50)
    ]
    assert sc[0] > sc[1] > sc[2]
    assert sc[2] < 0.1
    plain = griffin_lim(mag, STFT, x.shape[-1], iterations=50, momentum=0.0)
    assert float(plain.spectral_convergence[0]) > sc[2]  # momentum helps


def test_griffin_lim_is_batched_and_seeded():
    x = torch.stack([torch.as_tensor(harmonic_tone(f, 0.5)) for f in (220, 330)])
    mag = complex_stft(x, STFT).abs()
    a = griffin_lim(mag, STFT, x.shape[-1], iterations=5, seed=3)
    b = griffin_lim(mag, STFT, x.shape[-1], iterations=5, seed=3)
    assert a.audio.shape == x.shape
    assert torch.equal(a.audio, b.audio)
    assert np.all(np.isfinite(a.spectral_convergence.numpy()))
