"""Regenerate the two demo experiments of Verma & Smith (2017) as small 16 kHz FLAC files.

Pairs (content, style): a harp arpeggio with a tuning fork, and a sung phrase with a violin.
Instruments are rendered from the FluidR3_GM SoundFont (see ``demo/LICENSE-FluidR3.txt``),
the fork is a decaying 440 Hz sine. Run from the repository root::

    python manifests/make_demo.py

It rewrites ``manifests/demo/*.flac`` and ``manifests/demo.csv`` and prints each file's size,
spectral bandwidth and the SHA-256 of its decoded samples (equal on every run).
"""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from hpc_nst.metrics.spectral import spectral_bandwidth

try:
    from hpc_nst.audio.io import write_audio
    from hpc_nst.data.soundfont import Note, render_notes, tuning_fork
except ModuleNotFoundError:  # run from a checkout without installing the package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from hpc_nst.audio.io import write_audio
    from hpc_nst.data.soundfont import Note, render_notes, tuning_fork

HERE = Path(__file__).resolve().parent
SAMPLE_RATE = 16000
DURATION_S = 2.56
HARP, VIOLIN, CHOIR_AAHS = 46, 40, 52
PAIRS: list[tuple[str, str, str]] = [
    ("harp_fork", "harp", "tuning_fork"),
    ("voice_violin", "voice", "violin"),
]
"""(pair_id, content clip, style clip); clips are ``demo/<name>.flac``."""


def _legato(pitches: list[int], step_s: float, velocity: int = 90) -> list[Note]:
    """A monophonic line: each note ends exactly where the next begins."""
    return [(p, i * step_s, (i + 1) * step_s, velocity) for i, p in enumerate(pitches)]


def demo_clips(
    sample_rate: int = SAMPLE_RATE, soundfont: str | Path | None = None
) -> dict[str, np.ndarray]:
    """Render the four demo clips, each ``DURATION_S`` long, keyed by file stem."""
    # C major arpeggio over two octaves (C4..C6), one pluck every 0.25 s, left to ring.
    harp = [(p, 0.25 * i, DURATION_S, 90) for i, p in enumerate([60, 64, 67, 72, 76, 79, 84])]
    voice = _legato([64, 67, 69, 67], step_s=0.59)  # E4 G4 A4 G4, sung "aah"
    violin = _legato([67, 69, 71, 74], step_s=0.59)  # G4 A4 B4 D5
    kwargs = {"sample_rate": sample_rate, "soundfont": soundfont, "duration": DURATION_S}
    return {
        "harp": render_notes(harp, HARP, **kwargs),
        "tuning_fork": tuning_fork(440.0, DURATION_S, sample_rate, decay_s=1.5),
        "voice": render_notes(voice, CHOIR_AAHS, **kwargs),
        "violin": render_notes(violin, VIOLIN, **kwargs),
    }


def decoded_sha256(path: str | Path) -> str:
    """SHA-256 of a file's decoded 16-bit samples (independent of FLAC encoder metadata)."""
    data, rate = sf.read(str(path), dtype="int16", always_2d=True)
    return hashlib.sha256(np.int64(rate).tobytes() + data.tobytes()).hexdigest()


def write_demo(out_dir: str | Path = HERE, soundfont: str | Path | None = None) -> dict[str, Path]:
    """Write ``demo/<clip>.flac`` and ``demo.csv`` under ``out_dir``; return the FLAC paths."""
    out_dir = Path(out_dir)
    paths = {}
    for name, audio in demo_clips(SAMPLE_RATE, soundfont).items():
        paths[name] = out_dir / "demo" / f"{name}.flac"
        write_audio(paths[name], audio, SAMPLE_RATE)
    with open(out_dir / "demo.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["pair_id", "content", "style"])
        for pair_id, content, style in PAIRS:
            writer.writerow([pair_id, f"demo/{content}.flac", f"demo/{style}.flac"])
    return paths


def main() -> None:
    """Regenerate the demo files next to this script and print a summary."""
    paths = write_demo(HERE)
    print(f"{'file':<22}{'bytes':>8}{'seconds':>9}{'bandwidth_hz':>14}  sha256(decoded)")
    for path in paths.values():
        audio, rate = sf.read(str(path), dtype="float32")
        print(
            f"{path.relative_to(HERE)!s:<22}{path.stat().st_size:>8}{len(audio) / rate:>9.3f}"
            f"{spectral_bandwidth(audio, rate):>14.1f}  {decoded_sha256(path)[:16]}"
        )


if __name__ == "__main__":
    main()
