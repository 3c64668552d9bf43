import numpy as np
import pytest
import soundfile as sf

from hpc_nst.audio.io import AudioError, load_audio, write_audio


def _peak_hz(x: np.ndarray, sr: int = 16000) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))


def test_resamples_with_soxr_and_downmixes(tmp_path):
    sr = 44100
    t = np.arange(sr) / sr
    left = np.sin(2 * np.pi * 1000 * t)
    stereo = np.stack([left, left], axis=1).astype(np.float32)
    path = tmp_path / "stereo.flac"
    sf.write(path, stereo, sr)
    mono = load_audio(path, 16000)
    assert mono.dtype == np.float32 and mono.ndim == 1
    assert abs(len(mono) - 16000) <= 1
    assert abs(_peak_hz(mono) - 1000) < 3
    assert 0.95 < np.abs(mono).max() < 1.05


def test_downmix_averages_channels(tmp_path):
    data = np.zeros((1600, 2), dtype=np.float32)
    data[:, 0] = 0.5
    sf.write(tmp_path / "x.wav", data, 16000)
    assert np.allclose(load_audio(tmp_path / "x.wav"), 0.25, atol=1e-4)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "file not found"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00garbage" * 10), "unreadable audio"),
        (lambda p: sf.write(p, np.zeros((0,), np.float32), 16000), "no samples"),
        (
            lambda p: sf.write(p, np.full(800, np.nan, np.float32), 16000, subtype="FLOAT"),
            "NaN or Inf",
        ),
        (lambda p: sf.write(p, np.zeros(100, np.float32), 16000), "too short"),
    ],
)
def test_bad_input_names_file_and_problem(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=message) as err:
        load_audio(path, 16000, min_samples=480)
    assert str(path) in str(err.value)


def test_silence_is_allowed(tmp_path):
    sf.write(tmp_path / "s.wav", np.zeros(1600, np.float32), 16000)
    assert not load_audio(tmp_path / "s.wav").any()


def test_write_audio_is_atomic_and_roundtrips(tmp_path):
    x = (np.sin(np.arange(1600) / 10) * 0.5).astype(np.float32)
    write_audio(tmp_path / "a" / "out.flac", x)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["out.flac"]
    assert np.allclose(load_audio(tmp_path / "a" / "out.flac"), x, atol=1e-4)


@pytest.mark.parametrize(
    ("suffix", "fmt", "subtype", "rate"),
    [("wav", "WAV", "PCM_24", 22050), ("flac", "FLAC", "PCM_16", 48000),
     ("ogg", "OGG", "VORBIS", 44100), ("mp3", "MP3", "MPEG_LAYER_III", 44100)],
)
def test_reads_common_formats_at_any_rate(tmp_path, suffix, fmt, subtype, rate):
    t = np.arange(rate) / rate
    path = tmp_path / f"tone.{suffix}"
    sf.write(path, (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate,
             format=fmt, subtype=subtype)
    audio = load_audio(path, 16000)
    assert abs(len(audio) - 16000) < 1200  # lossy codecs pad a little
    assert abs(_peak_hz(audio[2000:14000]) - 440) < 5
