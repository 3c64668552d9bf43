"""The ``sampler`` method: the content's notes played with the style's own recorded notes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hpc_nst.config import load_job
from hpc_nst.engine import note_analysis as N
from hpc_nst.engine import sample_dsp as D
from hpc_nst.engine import sampler as S
from hpc_nst.engine.methods import run_method
from hpc_nst.errors import TransferError
from tests.engine.tones import SR, harmonic_db, level_db, notes


@pytest.fixture(scope="module")
def cfg():
    return load_job(Path(__file__).resolve().parents[2] / "jobs" / "sampler.toml")


def transfer(content: np.ndarray, style: np.ndarray, cfg) -> np.ndarray:
    return run_method([content], [style], cfg, seeds=[0])[0].audio


def median_f0(x: np.ndarray) -> float:
    f0, voiced = N.f0_track(x)
    return float(np.median(f0[voiced]))


def tremolo(freq: float, seconds: float, rate: float) -> np.ndarray:
    """A sustained tone whose level swings 6 dB at ``rate`` Hz."""
    t = np.arange(int(seconds * SR)) / SR
    env = 10 ** (3 * np.sin(2 * np.pi * rate * t) / 20) * np.clip(t / 0.01, 0, 1)
    env *= np.clip((seconds - t) / 0.01, 0, 1)
    tone = sum(np.sin(2 * np.pi * freq * h * t) / h for h in range(1, 6))
    return (0.2 * env * tone).astype(np.float32)


def modulation_at(x: np.ndarray, rate: float) -> float:
    """Share of the level envelope's fluctuation power within 1 Hz of ``rate``."""
    db = 20 * np.log10(N.frame_rms(x)[2:-2] + 1e-6)
    db = np.maximum(db, db.max() - 40.0)
    db = db - db.mean()
    power = np.abs(np.fft.rfft(db * np.hanning(len(db)))) ** 2
    freqs = np.fft.rfftfreq(len(db), d=N.HOP / SR)
    band = (freqs > 2) & (freqs < 20)
    return float(power[band & (np.abs(freqs - rate) <= 1)].sum() / power[band].sum())


def test_the_content_keeps_its_notes(cfg):
    content = notes([262.0, 330.0, 392.0, 523.0])
    out = transfer(content, notes([220.0, 300.0, 440.0], 0.5), cfg)
    assert len(out) == len(content)
    for i, f in enumerate([262.0, 330.0, 392.0, 523.0]):
        a = i * 0.6 + 0.1
        got = median_f0(out[int(a * SR):int((a + 0.3) * SR)])
        assert abs(1200 * np.log2(got / f)) < 30, (f, got)


def test_the_style_tremolo_reaches_the_content(cfg):
    content = notes([262.0, 330.0], seconds=1.2)  # steady
    style = np.concatenate([tremolo(220.0, 1.0, 6.0), tremolo(300.0, 1.0, 6.0)])
    out = transfer(content, style, cfg)
    steady = transfer(content, notes([220.0, 300.0], 1.0), cfg)
    note = slice(int(0.15 * SR), int(1.1 * SR))
    assert modulation_at(out[note], 6.0) > 0.5  # the style's 6 Hz swing, on the content's note
    assert modulation_at(steady[note], 6.0) < 0.2
    assert abs(1200 * np.log2(median_f0(out[note]) / 262.0)) < 30


def test_rests_stay_silent_and_levels_follow_the_content(cfg):
    loud_soft = np.concatenate([notes([262.0], 0.5, gap_s=0.5), 0.1 * notes([330.0], 0.5)])
    out = transfer(loud_soft, notes([220.0, 300.0], 0.8), cfg)
    assert level_db(out, 0.1, 0.4) - level_db(out, 0.65, 0.95) > 30  # the rest
    assert 14 < level_db(out, 0.1, 0.4) - level_db(out, 1.1, 1.4) < 26  # 20 dB softer note


def test_gain_invariance_and_determinism(cfg):
    content = notes([262.0, 330.0])
    style = notes([220.0, 440.0], 0.7, decay_s=0.3)
    out = transfer(content, style, cfg)
    np.testing.assert_allclose(transfer(content, 0.1 * style, cfg), out, atol=1e-4)
    assert abs(np.abs(out).max() - np.abs(content).max()) < 1e-3  # the content's peak
    np.testing.assert_array_equal(transfer(content, style, cfg), out)  # same bits


def test_the_style_notes_are_separated_from_their_neighbours():
    # a ringing note (220 Hz) and then another (330 Hz) over its tail
    t = np.arange(int(1.6 * SR)) / SR

    def ringing(f: float, start: float) -> np.ndarray:
        tt = np.maximum(t - start, 0)
        tone = sum(np.sin(2 * np.pi * f * h * tt) / h for h in range(1, 6))
        return np.where(t > start, np.exp(-tt / 0.6) * tone, 0.0)

    first, second = ringing(220.0, 0.05), ringing(330.0, 0.8)
    bank = S.StyleBank.from_audio((0.4 * (first + second)).astype(np.float32))
    pitches = [sn.note.f0 for sn in bank.notes]
    assert len(pitches) == 2 and abs(pitches[1] - 330) < 5, pitches
    later = bank.notes[1].audio
    spec = np.abs(np.fft.rfft(later[: int(0.5 * SR)] * np.hanning(int(0.5 * SR))))
    at = {f: 20 * np.log10(spec[int(f * 0.5) - 2:int(f * 0.5) + 3].max()) for f in (220, 330)}
    assert at[330] - at[220] > 30  # the first note's ringing is masked out of the second


def test_a_later_note_sharing_its_harmonics_is_kept_out_of_a_tail():
    # a long-ringing A4, three short notes, then an A3 (every A4 harmonic is one of its own)
    # within the A4's tail: the A3's attack must not be taken for the A4's tail (a rise)
    t = np.arange(int(1.6 * SR)) / SR

    def ringing(f: float, start: float, tau: float = 0.12) -> np.ndarray:
        tt = np.maximum(t - start, 0)
        tone = sum(np.sin(2 * np.pi * f * h * tt) / h for h in range(1, 6))
        return np.where(t > start, np.exp(-tt / tau) * tone, 0.0)

    x = ringing(440.0, 0.05, tau=0.6) + sum(
        ringing(f, s) for f, s in ((330.0, 0.3), (294.0, 0.55), (220.0, 0.8)))
    bank = S.StyleBank.from_audio((0.3 * x).astype(np.float32))
    assert [round(sn.note.f0 / 10) for sn in bank.notes] == [44, 33, 29, 22]
    first = bank.notes[0].audio  # starts at 0.05 s - PRE
    start = 0.05 - S.PRE / SR
    before, after = (level_db(first, a - start, b - start) for a, b in ((0.65, 0.78),
                                                                        (0.82, 0.95)))
    assert after < before - 3.0, (before, after)


def test_earlier_tails_ring_quieter_under_the_next_note(cfg, monkeypatch):
    # a ringing style (its tails reach into the next note) and two content notes a fifth apart
    style = notes([220.0, 247.0, 262.0, 294.0], seconds=0.6, decay_s=0.5, gap_s=0.0)
    content = notes([220.0, 330.0], seconds=0.5, gap_s=0.0)
    second = S.analyse_notes(content)[1].onset * N.HOP / SR

    def under_second(db: float) -> tuple[float, float]:  # the first note's f0, the second's
        monkeypatch.setattr(S, "NEXT_NOTE_DB", db)
        out = transfer(content, style, cfg)
        win = out[int((second + 0.06) * SR): int((second + 0.3) * SR)]
        return harmonic_db(win, 220.0, 1), harmonic_db(win, 330.0, 1)

    default = S.NEXT_NOTE_DB
    assert default > 0
    (first_off, second_off), (first_on, second_on) = under_second(0.0), under_second(default)
    assert abs(first_off - first_on - default) < 1.5, (first_off, first_on)
    assert abs(second_off - second_on) < 1.0  # the new note itself is not lowered


def test_extend_and_shift_keep_what_they_promise():
    x = notes([300.0], 0.3, gap_s=0.0)
    longer = D.extend(x, 3 * len(x))
    assert len(longer) == 3 * len(x)
    assert abs(1200 * np.log2(median_f0(longer) / 300.0)) < 20
    assert level_db(longer, 0.5, 0.8) > level_db(longer, 0.05, 0.25) - 3  # no dropout
    up, down = D.shift(x, 2 ** (5 / 12)), D.shift(x, 2 ** (-7 / 12))
    assert abs(1200 * np.log2(median_f0(up) / 300.0) - 500) < 20
    assert abs(1200 * np.log2(median_f0(down) / 300.0) + 700) < 20
    assert len(down) == pytest.approx(len(x) * 2 ** (7 / 12), abs=2)


@pytest.mark.parametrize("seconds", [0.05, 0.3, 1.0])
def test_extension_start_is_where_extend_stops_being_the_recording(seconds):
    """``layered`` weights the sampler's extended spans from there on (the first crossfade)."""
    x = (notes([300.0], seconds, gap_s=0.0) + 0.01).astype(np.float32)
    first = D.extension_start(len(x))
    longer = D.extend(x, 3 * len(x))
    np.testing.assert_array_equal(longer[:first], x[:first].astype(np.float64))
    assert first == len(x) or not np.array_equal(longer[first:len(x)], x[first:].astype(np.float64))
    assert first < len(x) or seconds < 0.1  # pieces for a sustain of 0.3 s or more


def test_silent_content_gives_silence_and_a_silent_style_an_error(cfg):
    out = transfer(np.zeros(SR, np.float32), notes([220.0]), cfg)
    assert not np.any(out)
    with pytest.raises(TransferError, match="no pitched note"):
        transfer(notes([262.0]), np.zeros(SR, np.float32), cfg)


@pytest.mark.parametrize("style_f0", [200.0, 450.0])  # shifted up 7 semitones, down 7
def test_onsets_stay_put_through_the_pitch_shift(cfg, style_f0):
    content = np.concatenate([np.zeros(int(0.2 * SR), np.float32), notes([300.0], 0.6)])
    out = transfer(content, notes([style_f0], 0.8, decay_s=0.3), cfg)

    def onset(x: np.ndarray) -> float:
        return np.argmax(np.abs(x) > 0.1 * np.abs(x).max()) / SR

    assert abs(onset(out) - onset(content)) < 0.004, (onset(out), onset(content))


def test_an_extended_plucked_note_decays_without_a_jump_into_its_tail(cfg):
    t = np.arange(int(1.2 * SR)) / SR  # one long note, 50 ms fades (no extra onset at its end)
    env = np.clip(t / 0.05, 0, 1) * np.clip((1.2 - t) / 0.05, 0, 1)
    tone = sum(np.sin(2 * np.pi * 262.0 * h * t) / h for h in range(1, 6))
    content = np.concatenate([0.2 * env * tone, np.zeros(int(0.5 * SR))]).astype(np.float32)
    out = transfer(content, notes([220.0, 300.0], 0.3, decay_s=0.15, gap_s=0.2), cfg)
    db = 20 * np.log10(N.frame_rms(out)[5:135] + 1e-9)  # 50 ms .. 1.35 s: the note's end too
    assert np.diff(db).max() < 3.0  # never rises by more than 3 dB from one 10 ms to the next
    assert db[:10].mean() - db[100:110].mean() > 15  # and it does decay


def test_a_style_is_cut_into_notes_once_for_many_contents(cfg):
    from hpc_nst.engine.methods.sampler import style_bank

    style = notes([220.0, 330.0], 0.5)
    assert style_bank(style) is style_bank(style.copy())  # same audio: the same bank
    assert style_bank(style) is not style_bank(0.5 * style)
    first = transfer(notes([262.0]), style, cfg)
    np.testing.assert_array_equal(transfer(notes([262.0]), style, cfg), first)


def _slipping_track(monkeypatch, rise_db: float, until: int) -> np.ndarray:
    """A decaying 220 Hz note whose f0 track reads 440 Hz from frame 50 to ``until`` (a slip
    onto the second harmonic), where the onset detector fires; at that frame the level rises
    by ``rise_db`` (0: a slip in the decay; 6 dB: a real new note an octave up)."""
    n_frames = 100
    t = np.arange(n_frames * N.HOP) / SR
    env = np.exp(-t / 0.4) * np.where(t >= 50 * N.HOP / SR, 10 ** (rise_db / 20), 1.0)
    audio = (0.3 * env * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
    f0 = np.full(n_frames + 1, 220.0)
    f0[50:until] = 440.0
    monkeypatch.setattr(S, "f0_track", lambda a: (f0.copy(), np.ones(len(f0), bool)))
    monkeypatch.setattr(N, "detected_onsets", lambda f, v, a: np.array([0, 50]))
    return audio


def test_an_f0_slip_onto_a_harmonic_is_no_new_note_and_no_glide(monkeypatch):
    notes_ = S.analyse_notes(_slipping_track(monkeypatch, rise_db=0.0, until=70))
    assert len(notes_) == 1, [(n.onset, n.f0) for n in notes_]
    assert np.allclose(notes_[0].contour, 220.0)  # the slipped frames read as the note's pitch


def test_the_slip_rule_merges_at_harmonic_intervals(monkeypatch):
    # a slip as long as the note itself: one note (its pitch the longer reading), and two
    # notes when no harmonic interval counts as a slip
    audio = _slipping_track(monkeypatch, rise_db=0.0, until=101)
    assert len(S.analyse_notes(audio)) == 1
    monkeypatch.setattr(N, "HARMONIC_JUMPS", ())
    assert len(S.analyse_notes(audio)) == 2


def test_a_new_note_an_octave_up_with_an_attack_stays_a_note(monkeypatch):
    notes_ = S.analyse_notes(_slipping_track(monkeypatch, rise_db=6.0, until=101))
    assert [round(n.f0) for n in notes_] == [220, 440]


@pytest.mark.parametrize("db_per_s", [20.0, 40.0])
def test_an_extended_decaying_note_keeps_decaying_without_a_swell_at_each_seam(db_per_s):
    """Pieces come from earlier (louder) in the sustain than where they are placed: each is
    brought to the level the trend gives its place, so no seam rises (before: +2.4 to +5.7 dB
    at the first seam, a 5 Hz sawtooth over the extension)."""
    t = np.arange(int(0.5 * SR)) / SR
    rng = np.random.default_rng(0)
    x = (np.sin(2 * np.pi * 220.0 * t) + 0.01 * rng.standard_normal(len(t))) * 10 ** (
        -db_per_s * t / 20)
    trend = D.trend_db_per_sample(x)
    assert trend * SR == pytest.approx(-db_per_s, rel=0.1)
    longer = D.extend(x, 4 * len(x), trend)
    frame = int(0.02 * SR)
    level = 20 * np.log10(np.sqrt(np.mean(longer[: len(longer) // frame * frame]
                                          .reshape(-1, frame) ** 2, axis=1)))
    expected = level[0] - db_per_s * 0.02 * np.arange(len(level))
    beyond = len(x) // frame - 3  # from the last frames of the recording on
    assert np.max(np.abs(level[beyond:] - expected[beyond:])) < 1.5
    assert np.max(np.diff(level[beyond:])) < 0.5  # never rises by more than noise
    flat = D.extend(x, 4 * len(x))  # no trend given: the pieces as recorded (the old call)
    np.testing.assert_array_equal(longer[: D.extension_start(len(x))],
                                  flat[: D.extension_start(len(x))])


def test_a_style_note_needs_enough_frames_voiced_by_the_track_itself():
    """Frames where the f0 is only held (between or before the track's own voiced frames) do
    not count towards MIN_VOICED or the steadiness."""
    def note(voiced: np.ndarray, contour: np.ndarray | None = None) -> S.Note:
        n = len(voiced)
        return S.Note(0, n, 220.0, 1.0, np.full(n, 220.0) if contour is None else contour, n,
                      20.0, voiced)

    good = note(np.ones(S.MIN_VOICED + 2, bool))
    sparse = np.zeros(S.MIN_VOICED + 2, bool)
    sparse[[0, -1]] = True  # voiced twice, held in between
    assert S.reliable([good, note(sparse)]) == [good]
    assert len(S.reliable([good, note(~sparse)])) == 2
    # steady where voiced; the wild values sit only in held frames
    wild = np.full(S.MIN_VOICED + 6, 220.0)
    wild[1:6] = 330.0  # counted, 7 of 12 frames steady: under STEADY
    mask = np.ones(len(wild), bool)
    mask[1:6] = False
    assert len(S.reliable([good, note(mask, wild)])) == 2


@pytest.mark.parametrize("method", ["sampler", "layered", "layered-post"])
def test_a_content_without_pitched_notes_fails_instead_of_a_silent_output(cfg, method) -> None:
    """Noise as the content gave exact silence, stored as done and exported without a word."""
    from hpc_nst.config import apply_overrides

    noise = np.random.default_rng(0).normal(0, 0.1, 2 * SR).astype(np.float32)
    style = notes([220.0, 262.0, 330.0]).astype(np.float32)
    with pytest.raises(TransferError, match=f"method {method} made silence of a content"):
        transfer(noise, style, apply_overrides(cfg, {"method": method}))
