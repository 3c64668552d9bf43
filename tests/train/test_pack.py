"""Spectrogram packs: round trip within the quantisation error, training from a pack, bad packs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hpc_nst.cli import main
from hpc_nst.config import STFTConfig
from hpc_nst.models.checkpoint import load_checkpoint
from hpc_nst.train.cache import SpecCache
from hpc_nst.train.pack import PackError, is_pack, read_pack, write_pack


def _cache(n: int = 5) -> SpecCache:
    rng = np.random.default_rng(0)
    specs = rng.uniform(0, 6, size=(n, 257, 40)).astype(np.float16)
    specs[1, :, 30:] = 0  # a shorter clip, zero-padded
    return SpecCache(Path("."), specs, np.array([40, 30, 40, 40, 40][:n], dtype=np.int32))


def test_round_trip_within_half_a_step(tmp_path: Path) -> None:
    cache = _cache()
    labels, splits = ["a", "b", "a", "b", "a"], ["train", "train", "val", "test", "train"]
    meta = write_pack(cache, labels, splits, STFTConfig(), "hash1", tmp_path / "p",
                      source="x.csv", part_clips=2)
    assert meta.name == "pack.json" and is_pack(tmp_path / "p") and is_pack(meta)
    assert sorted(f.name for f in (tmp_path / "p").glob("part-*")) == [
        "part-0000.u8.xz", "part-0001.u8.xz", "part-0002.u8.xz"]
    pack = read_pack(tmp_path / "p", dither=False)
    assert pack.labels == labels and pack.splits == splits and pack.data_hash == "hash1"
    assert pack.stft == STFTConfig() and pack.source == "x.csv"
    np.testing.assert_array_equal(pack.cache.lengths, cache.lengths)
    err = np.abs(pack.cache.specs.astype(np.float32) - cache.specs.astype(np.float32))
    assert err.max() <= 1 / 32 + 4e-3  # half a step, plus float16 rounding of the values
    assert np.all(pack.cache.specs[1, :, 30:] == 0)
    dithered = read_pack(tmp_path / "p").cache.specs.astype(np.float32)
    assert np.abs(dithered - cache.specs.astype(np.float32)).max() <= 1 / 16 + 4e-3
    assert np.all(dithered[1, :, 30:] == 0)  # padding stays silent


def test_dither_keeps_quiet_bins_from_becoming_a_gate(tmp_path: Path) -> None:
    """Quiet bins (under half a step) must not all read back as exact zeros."""
    quiet = np.random.default_rng(1).uniform(0.001, 0.03, size=(2, 257, 40))
    cache = SpecCache(Path("."), quiet.astype(np.float16), np.array([40, 40], dtype=np.int32))
    write_pack(cache, ["a", "b"], ["train", "val"], STFTConfig(), "h", tmp_path / "p")
    assert np.all(read_pack(tmp_path / "p", dither=False).cache.specs == 0)
    specs = read_pack(tmp_path / "p").cache.specs.astype(np.float32)
    assert (specs > 0).mean() > 0.3
    assert abs(specs.mean() - quiet.mean()) < 0.01


def test_mismatched_labels_and_damaged_parts_are_named(tmp_path: Path) -> None:
    cache = _cache()
    with pytest.raises(PackError, match="5 spectrograms but 4 labels"):
        write_pack(cache, ["a"] * 4, ["train"] * 4, STFTConfig(), "h", tmp_path / "bad")
    write_pack(cache, ["a"] * 5, ["train"] * 5, STFTConfig(), "h", tmp_path / "p", part_clips=3)
    (tmp_path / "p" / "part-0001.u8.xz").write_bytes(b"not lzma")
    with pytest.raises(PackError, match=r"part-0001\.u8\.xz: missing or corrupt"):
        read_pack(tmp_path / "p")
    (tmp_path / "p" / "part-0001.u8.xz").unlink()
    with pytest.raises(PackError, match=r"part-0001\.u8\.xz: missing or corrupt"):
        read_pack(tmp_path / "p")
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "pack.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(PackError, match="not an hpc_nst spectrogram pack"):
        read_pack(tmp_path / "q")


def test_cli_exports_a_pack_and_trains_from_it(tiny_gm: Path, tmp_path: Path, capsys) -> None:
    """Export from the audio, then train from the pack alone (as on a node without the audio)."""
    pack_dir = tmp_path / "pack"
    assert main(["train", str(tiny_gm), "--export-pack", str(pack_dir),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "wrote" in capsys.readouterr().err
    out = tmp_path / "clf.pt"
    assert main(["train", str(pack_dir), "-o", str(out), "--width", "4", "--batch-size", "16",
                 "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "30 examples from the pack" in err and "held-out (test, 6 clips)" in err
    meta = load_checkpoint(out)[1]
    assert meta["n_train"] == 21 and len(meta["classes"]) == 3
    assert "(pack " in meta["source"]
    assert main(["train", str(pack_dir), "--export-pack", str(tmp_path / "again")]) == 2
    assert "already a spectrogram pack" in capsys.readouterr().err
