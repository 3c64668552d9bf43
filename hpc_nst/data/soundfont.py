"""General MIDI notes rendered with a SoundFont (FluidR3_GM by default), and tuning forks.

Rendering goes through ``pretty_midi`` and ``pyfluidsynth`` (the ``data`` extra) with a fresh
synthesizer per call, so equal inputs give bit-identical output. Only melodic GM programs are
used; the drum kit (MIDI channel 10) is never selected.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

import numpy as np

SOUNDFONT_ENV = "HPC_NST_SOUNDFONT"
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
DEBIAN_PACKAGE = "fluid-soundfont-gm"
PEAK = 0.9
"""Peak amplitude of every rendered clip that is not silent."""

Note = tuple[int, float, float, int]
"""One note: (MIDI pitch, start in seconds, end in seconds, velocity 1-127)."""

# fmt: off
GM_PROGRAM_NAMES: list[str] = [
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone",
    "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ",
    "Reed Organ", "Accordion", "Harmonica", "Tango Accordion",
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)",
    "Electric Guitar (clean)", "Electric Guitar (muted)", "Overdriven Guitar",
    "Distortion Guitar", "Guitar Harmonics",
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass",
    "Slap Bass 1", "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    "Violin", "Viola", "Cello", "Contrabass",
    "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2",
    "Choir Aahs", "Voice Oohs", "Synth Choir", "Orchestra Hit",
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet",
    "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2",
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax",
    "Oboe", "English Horn", "Bassoon", "Clarinet",
    "Piccolo", "Flute", "Recorder", "Pan Flute",
    "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)",
    "Lead 5 (charang)", "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)",
    "Pad 5 (bowed)", "Pad 6 (metallic)", "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)",
    "FX 5 (brightness)", "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    "Sitar", "Banjo", "Shamisen", "Koto",
    "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock",
    "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet",
    "Telephone Ring", "Helicopter", "Applause", "Gunshot",
]

# Usual MIDI pitch range of each GM family (program // 8), then per-program exceptions.
_FAMILY_RANGES: list[tuple[int, int]] = [
    (21, 108),  # piano
    (60, 96),   # chromatic percussion
    (36, 96),   # organ
    (40, 88),   # guitar
    (28, 67),   # bass
    (36, 96),   # strings
    (36, 96),   # ensemble
    (36, 84),   # brass
    (49, 81),   # reed
    (60, 96),   # pipe
    (36, 96),   # synth lead
    (36, 96),   # synth pad
    (36, 96),   # synth effects
    (48, 84),   # ethnic
    (48, 84),   # percussive
    (48, 72),   # sound effects
]
_PROGRAM_RANGES: dict[int, tuple[int, int]] = {
    6: (29, 89), 7: (29, 89),                                     # harpsichord, clavinet
    9: (79, 108), 11: (53, 89), 12: (45, 96), 13: (65, 108),      # glockenspiel .. xylophone
    14: (60, 77), 15: (48, 96),                                   # tubular bells, dulcimer
    19: (24, 96), 21: (53, 89), 22: (60, 96), 23: (53, 89),       # church organ .. tango acc.
    31: (52, 88), 38: (28, 72), 39: (28, 72),                     # guitar harm., synth basses
    40: (55, 103), 41: (48, 91), 42: (36, 76), 43: (28, 67),      # violin, viola, cello, bass
    44: (28, 96), 45: (28, 96), 46: (23, 103), 47: (38, 57),      # tremolo, pizz., harp, timp.
    48: (28, 96), 49: (28, 96),                                   # string ensembles
    52: (48, 79), 53: (48, 79), 54: (48, 84), 55: (48, 72),       # choir, voice, orch. hit
    56: (54, 86), 57: (40, 72), 58: (28, 58), 59: (54, 82),       # trumpet .. muted trumpet
    60: (34, 77), 62: (36, 96), 63: (36, 96),                     # horn, synth brass
    64: (56, 88), 66: (44, 76), 67: (36, 69),                     # soprano, tenor, bari sax
    68: (58, 91), 69: (52, 81), 70: (34, 75), 71: (50, 91),       # oboe .. clarinet
    72: (74, 108), 74: (72, 98), 76: (60, 84), 77: (55, 84),      # piccolo, recorder, ...
    78: (72, 96), 79: (60, 84),                                   # whistle, ocarina
    104: (48, 77), 106: (50, 79), 107: (55, 91), 108: (60, 84),   # sitar, shamisen, koto, ...
    109: (60, 77), 110: (55, 96),                                 # bagpipe, fiddle
    112: (72, 96), 114: (52, 76), 116: (36, 60), 117: (40, 64),   # tinkle bell .. melodic tom
    118: (36, 72),                                                # synth drum
}
# fmt: on


def _check_program(program: int) -> int:
    if isinstance(program, bool) or not isinstance(program, (int, np.integer)):
        raise TypeError(f"GM program must be an int in 0..127, got {program!r}")
    if not 0 <= program <= 127:
        raise ValueError(f"GM program must be in 0..127, got {program}")
    return int(program)


def playable_range(program: int) -> tuple[int, int]:
    """Usual (lowest, highest) MIDI pitch of a GM program, e.g. (21, 108) for the piano."""
    program = _check_program(program)
    return _PROGRAM_RANGES.get(program, _FAMILY_RANGES[program // 8])


def check_soundfont(path: Path, origin: str) -> Path:
    """``path`` if it is a SoundFont file; a FileNotFoundError naming it and how to get one
    where there is none, an :class:`~hpc_nst.errors.AudioError` where the file is not a
    SoundFont (no RIFF/sfbk header: fluidsynth would render silence from it)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"SoundFont not found: {path} ({origin}). Install the Debian package "
            f"{DEBIAN_PACKAGE} (apt-get install {DEBIAN_PACKAGE}), which provides "
            f"{DEFAULT_SOUNDFONT}, or set {SOUNDFONT_ENV} to an existing .sf2 file."
        )
    with open(path, "rb") as fh:  # fluidsynth renders silence from anything else
        head = fh.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        from hpc_nst.errors import AudioError

        raise AudioError(f"{path} ({origin}): not a SoundFont (an .sf2/.sf3 file starts with "
                         f"RIFF....sfbk; this one with {head[:12]!r}); give a SoundFont, e.g. "
                         f"{DEFAULT_SOUNDFONT}")
    return path


def default_soundfont() -> Path:
    """The SoundFont to render with: ``$HPC_NST_SOUNDFONT`` if set, else FluidR3_GM.

    Raises:
        FileNotFoundError: the file does not exist; the message names the path and the
            Debian package that provides the default.
    """
    env = os.environ.get(SOUNDFONT_ENV, "")
    if env:
        return check_soundfont(Path(env), f"from ${SOUNDFONT_ENV}")
    return check_soundfont(DEFAULT_SOUNDFONT, "default path")


def _check_note(note: Sequence[float]) -> Note:
    if len(note) != 4:
        raise ValueError(f"a note is (pitch, start_s, end_s, velocity), got {note!r}")
    pitch, start, end, velocity = note
    if not (float(pitch).is_integer() and 0 <= pitch <= 127):
        raise ValueError(f"note pitch must be an integer MIDI pitch in 0..127: {note!r}")
    if not (float(velocity).is_integer() and 1 <= velocity <= 127):
        raise ValueError(f"note velocity must be an integer in 1..127: {note!r}")
    if not (np.isfinite(start) and np.isfinite(end) and 0 <= start < end):
        raise ValueError(f"note times must satisfy 0 <= start_s < end_s: {note!r}")
    return int(pitch), float(start), float(end), int(velocity)


def _import_pretty_midi() -> ModuleType:
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth; fails if libfluidsynth is missing)
        import pretty_midi
    except ImportError as exc:
        raise ImportError(
            "rendering notes needs pretty_midi and pyfluidsynth (both pip packages) "
            f"and the FluidSynth library (Debian package libfluidsynth3): {exc}"
        ) from exc
    return pretty_midi


def render_notes(
    notes: Sequence[Note],
    program: int,
    sample_rate: int = 16000,
    soundfont: str | Path | None = None,
    duration: float | None = None,
) -> np.ndarray:
    """Render notes played by one GM program to mono float32 audio.

    Args:
        notes: (MIDI pitch, start_s, end_s, velocity) tuples; they may overlap.
        program: GM program number 0..127 (melodic; the drum kit is not available).
        sample_rate: output rate in Hz; FluidSynth renders at this rate directly.
        soundfont: .sf2 file; defaults to :func:`default_soundfont`.
        duration: if given, the output is trimmed or zero-padded to this many seconds.
            Otherwise it runs to the last note-off plus one second of release.

    Returns:
        Float32 array, peak-normalised to 0.9 unless silent (peak at most one 16-bit step).

    Raises:
        FileNotFoundError: the SoundFont is missing.
        ValueError: a note, the program, the rate or the duration is out of range.
    """
    program = _check_program(program)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    if duration is not None and not (np.isfinite(duration) and duration >= 0):
        raise ValueError(f"duration must be a non-negative number of seconds, got {duration}")
    checked = [_check_note(note) for note in notes]
    if soundfont is None:
        path = default_soundfont()
    else:
        path = check_soundfont(Path(soundfont), "soundfont argument")

    audio = np.zeros(0)
    if checked:
        pretty_midi = _import_pretty_midi()
        instrument = pretty_midi.Instrument(program=program, is_drum=False)
        instrument.notes = [
            pretty_midi.Note(velocity=vel, pitch=pitch, start=start, end=end)
            for pitch, start, end, vel in checked
        ]
        midi = pretty_midi.PrettyMIDI()
        midi.instruments.append(instrument)
        audio = midi.fluidsynth(fs=sample_rate, synthesizer=str(path), normalize=False)
        audio = np.asarray(audio, dtype=np.float64)
    if duration is not None:
        n_samples = int(round(duration * sample_rate))
        audio = np.pad(audio[:n_samples], (0, max(0, n_samples - audio.shape[0])))
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 2.0**-15:
        audio = audio * (PEAK / peak)
    return audio.astype(np.float32)


def tuning_fork(
    freq: float = 440.0,
    seconds: float = 2.56,
    sample_rate: int = 16000,
    decay_s: float = 1.5,
    attack_s: float = 0.005,
) -> np.ndarray:
    """A struck tuning fork: a pure sine with a raised-cosine attack and exponential decay.

    Args:
        freq: frequency in Hz, below the Nyquist frequency.
        seconds: length of the clip.
        sample_rate: rate in Hz.
        decay_s: amplitude time constant; the envelope is ``exp(-t / decay_s)``.
        attack_s: length of the raised-cosine onset ramp.

    Returns:
        Float32 array of ``round(seconds * sample_rate)`` samples with peak 0.9.
    """
    if sample_rate <= 0 or not 0 < freq < sample_rate / 2:
        raise ValueError(f"need 0 < freq < sample_rate / 2, got {freq} Hz at {sample_rate} Hz")
    if decay_s <= 0 or attack_s < 0 or seconds < 0:
        raise ValueError("decay_s must be positive, seconds and attack_s non-negative")
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    envelope = np.exp(-t / decay_s)
    if attack_s > 0:
        ramp = t < attack_s
        envelope[ramp] *= 0.5 - 0.5 * np.cos(np.pi * t[ramp] / attack_s)
    audio = envelope * np.sin(2 * np.pi * freq * t)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 0:
        audio *= PEAK / peak
    return audio.astype(np.float32)
