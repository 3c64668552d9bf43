"""Spoken content: does a method keep the voice's pitch contour and take the style instrument?

    python benchmarks/speech_content.py [--out DIR] [--jobs content-copy eq paper ...]
        [--count 8] [--seed 5] [--csv OUT.csv]

Issue 12 asks for speech or singing content besides the instrument triplets, where there is
no target: the output should keep the voice's pitch contour and sound like the style. The
contents are sentences spoken by ``espeak-ng`` (Debian package ``espeak-ng``; formant
synthesis, so real prosody, not a real voice), in several voices and pitches, cut to 2.56 s;
the styles are instrument melodies rendered from the default SoundFont by the triplet
generator (seed ``--seed``: not the benchmark's triplets). Per job and pair (in-process, the
metric code of ``hpc_nst.metrics``):

- contour: pYIN (65-2100 Hz) on output and speech; over the frames where both are voiced,
  the share within 50 cents and the median distance in cents (neither defined, and left out of
  the mean, for a pair with no such frame); ``voiced_kept``: the share of the speech's voiced
  frames that the output voices too;
- ``judge_top1`` (the shipped EQ-proof judge), ``judge_2sf_top1`` (the two-SoundFont judge),
  ``style_top1`` (the shipped classifier): is the style instrument heard;
- seconds per pair.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Where did you put the keys this morning?",
    "I never said she stole my money.",
    "Please call Stella and ask her to bring these things.",
    "How are you doing today, my friend?",
    "We will meet again in the old garden.",
    "Nobody expected the music to stop so suddenly.",
    "Is it really going to rain all weekend?",
)
VOICES = ("en-us", "en-gb+f3", "en-us+m3", "en-gb-x-rp+f2")
PITCHES = (35, 50, 65, 80)
SR = 16000
SECONDS = 2.56


def speak(text: str, voice: str, pitch: int, out: Path) -> np.ndarray:
    """``text`` spoken by espeak-ng, at 16 kHz, cut (or padded) to SECONDS."""
    import librosa
    import soundfile as sf

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SystemExit("espeak-ng not found: apt-get install espeak-ng")
    subprocess.run([exe, "-v", voice, "-p", str(pitch), "-s", "165", "-w", str(out), text],
                   check=True, capture_output=True)
    audio, sr = sf.read(out, dtype="float32")
    audio = librosa.resample(audio, orig_sr=sr, target_sr=SR)
    n = int(SECONDS * SR)
    return np.pad(audio, (0, max(0, n - len(audio))))[:n].astype(np.float32)


def contour(out: np.ndarray, speech: np.ndarray) -> dict[str, float]:
    import librosa

    kw = {"fmin": 65, "fmax": 2100, "sr": SR, "frame_length": 1024, "hop_length": 256}
    f_o, v_o, _ = librosa.pyin(out, **kw)
    f_s, v_s, _ = librosa.pyin(speech, **kw)
    n = min(len(f_o), len(f_s))
    both = v_o[:n] & v_s[:n]
    cents = np.abs(1200 * np.log2(f_o[:n][both] / f_s[:n][both]))
    return {"within_50c": float(np.mean(cents < 50)) if both.any() else float("nan"),
            "median_cents": float(np.median(cents)) if both.any() else float("nan"),
            "voiced_kept": float(both.sum() / max(v_s[:n].sum(), 1))}


def main() -> None:
    from hpc_nst.audio.io import load_audio
    from hpc_nst.config import load_job
    from hpc_nst.data.triplets import render_triplets
    from hpc_nst.engine.methods import run_method
    from hpc_nst.errors import HpcNstError
    from hpc_nst.metrics.judge import load_judge
    from hpc_nst.metrics.style_class import load_classifier

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="keep the rendered audio here (default: a temp dir)")
    ap.add_argument("--jobs", nargs="+", default=["content-copy", "eq", "paper", "sampler",
                                                   "harmonic", "layered"])
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--seed", type=int, default=5, help="seed of the style melodies")
    ap.add_argument("--csv", type=Path)
    args = ap.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="hpc-nst-speech-"))
    work.mkdir(parents=True, exist_ok=True)
    render_triplets(work / "styles", [args.count], [SECONDS], seed=args.seed,
                    overwrite=True)
    styles = pd.read_csv(work / "styles" / "manifest.csv")
    labels = pd.read_csv(work / "styles" / "labels.csv").set_index("pair_id")
    judges = {"judge_top1": load_judge(),
              "judge_2sf_top1": load_judge(ROOT / "hpc_nst" / "assets" / "judge-2sf.npz")}
    clf = load_classifier()
    rows = []
    for i, (_, st) in enumerate(styles.iterrows()):
        # a sentence's repeats in other voices (count > len(SENTENCES))
        text = SENTENCES[i % len(SENTENCES)]
        voice = VOICES[(i + i // len(SENTENCES)) % len(VOICES)]
        pitch = PITCHES[(i // len(VOICES)) % len(PITCHES)]
        speech = speak(text, voice, pitch, work / f"speech-{i:02d}.wav")
        style = load_audio(work / "styles" / st["style"], SR)
        label = labels.loc[st.pair_id, "style_label"]
        for job in args.jobs:
            cfg = load_job(ROOT / "jobs" / f"{job}.toml")
            started = time.perf_counter()
            try:
                out = run_method([speech], [style], cfg, seeds=[cfg.optim.seed])[0].audio
            except Exception as exc:  # noqa: BLE001 (a method that fails a pair: reported)
                kind = "" if isinstance(exc, HpcNstError) else f"{type(exc).__name__}: "
                rows.append({"pair": i, "job": job, "voice": voice, "style": label,
                             "error": f"{kind}{exc}"})
                continue
            row = {"pair": i, "job": job, "voice": voice, "style": label,
                   "seconds": time.perf_counter() - started, **contour(out, speech)}
            for col, judge in judges.items():
                row[col] = float(np.argmax(judge.probabilities(out)) == judge.index(label))
            row["style_top1"] = float(np.argmax(clf.probabilities(out)) == clf.index(label))
            rows.append(row)
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)
    cols = ["within_50c", "median_cents", "voiced_kept", "judge_top1", "judge_2sf_top1",
            "style_top1", "seconds"]
    done = df[df["error"].isna()] if "error" in df else df
    if done.empty:
        raise SystemExit("every pair failed:\n" + "\n".join(df["error"].astype(str)))
    table = done.groupby("job", sort=False)[cols].mean()
    table.insert(0, "pairs", done.groupby("job", sort=False).size())
    print(f"{args.count} spoken contents (espeak-ng) x instrument styles (seed {args.seed}); "
          f"audio in {work}")
    print("| job | " + " | ".join(table.columns) + " |")
    print("|---|" + "---|" * len(table.columns))
    for job, r in table.iterrows():
        print(f"| {job} | " + " | ".join(f"{v:.3g}" for v in r.values) + " |")
    if "error" in df:
        for _, r in df.dropna(subset=["error"]).iterrows():
            print(f"failed: {r.job} pair {r.pair}: {r.error}")


if __name__ == "__main__":
    main()
