"""``hpc-nst verify``: corrupted, truncated and deleted chunks, edited metadata; --repair and a
rerun restore the same bits; export and report refuse unverified pairs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import zarr

from hpc_nst.batch import store as st
from hpc_nst.cli import main

from .conftest import TINY, write_csv

pytestmark = pytest.mark.slow
ROWS = ["p1,a.wav,b.wav", "p2,b.wav,c.wav", "p3,d.wav,a.wav", "p4,c.wav,d.wav"]


def _run(manifest, store) -> int:
    return main(["run", str(manifest), "-o", str(store), "--workers", "1", "--batch-size", "2",
                 "--progress-interval", "0", *[x for s in TINY for x in ("--set", s)]])


def _done_store(tmp_path, audio_dir):
    """A store of the 4 pairs, all done; its root (writable) and its pair ids."""
    store = tmp_path / "s.zarr"
    assert _run(write_csv(audio_dir / "m.csv", "pair_id,content,style", ROWS), store) == 0
    root = st.open_root(store, mode="r+")
    return store, root, [str(p) for p in root["pair"][:]]


def _verify(store, capsys, *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["verify", str(store), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)  # stdout is JSON only


def _audio(store) -> dict[str, np.ndarray]:
    root = zarr.open_group(str(store), mode="r")
    ids, n = root["pair"][:], root["samples"][:]
    return {str(p): np.asarray(root["audio"][i, : n[i]]) for i, p in enumerate(ids)}


def _rerun_restores(manifest, store, before: dict[str, np.ndarray], capsys) -> None:
    """Rerunning the batch leaves every pair verified, with the same audio as ``before``."""
    assert _run(manifest, store) == 0
    code, res = _verify(store, capsys)
    assert code == 0 and res["checked"] == len(before)
    after = _audio(store)
    for pid, audio in before.items():
        np.testing.assert_array_equal(after[pid], audio)


def test_verify_finds_every_fault_and_repair_restores_the_bits(tmp_path, audio_dir, capsys):
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", ROWS)
    store = tmp_path / "s.zarr"
    assert _run(manifest, store) == 0
    code, res = _verify(store, capsys)
    assert code == 0 and res["ok"] and res["checked"] == 4 and not res["bad"]
    before = _audio(store)
    root = st.open_root(store)
    ids = [str(p) for p in root["pair"][:]]
    shard_of = {p: i // 2 for i, p in enumerate(ids)}  # 2 pairs per shard

    # 1. flip bytes inside the audio shard of shard 0
    f = store / "audio" / "c" / "0" / "0"
    raw = bytearray(f.read_bytes())
    raw[len(raw) // 2: len(raw) // 2 + 16] = bytes(16)
    f.write_bytes(bytes(raw))
    # 2. delete the loss chunk of shard 1 (reads back as NaN fill)
    (store / "loss" / "c" / "1" / "0" / "0").unlink()
    code, res = _verify(store, capsys)
    # (the flipped bytes hit one pair's inner chunk of shard 0; the lost loss chunk both of 1)
    shard1 = {p for p in ids if shard_of[p] == 1}
    assert code == 1 and shard1 < set(res["bad"]) and len(res["bad"]) >= 3
    assert res["bad_count"] == len(res["bad"]) and res["verified"] == res["checked"]
    assert res["verified"] + res["bad_count"] == res["done"]  # every done pair, one or other
    for pid, problem in res["bad"].items():
        if shard_of[pid] == 0:
            assert "unreadable data" in problem or "checksum mismatch in audio" in problem
        else:
            assert problem.startswith("checksum mismatch in loss")
    # export and report refuse such pairs unless told to skip them
    assert main(["export", str(store), "-o", str(tmp_path / "x"), "--format", "parquet"]) == 2
    assert "does not match the checksum" in capsys.readouterr().err

    # 3. repair, rerun: everything redone, verified, and the same bits as before
    bad = set(res["bad"])
    assert main(["verify", str(store), "--repair"]) == 0
    assert f"reset {len(bad)} pair(s) to pending" in capsys.readouterr().out
    status = st.open_root(store)["status"][:]
    assert {ids[i] for i in np.flatnonzero(status == st.PENDING)} == bad
    assert main(["status", str(store)]) == 0  # not "started but not finished"
    assert f"({len(bad)} reset to run again: verify --repair or --recompute-changed)" in \
        capsys.readouterr().out
    _rerun_restores(manifest, store, before, capsys)


def test_truncated_chunk_edited_metadata_and_missing_array(tmp_path, audio_dir, capsys):
    store, root, ids = _done_store(tmp_path, audio_dir)
    spec = store / "spectrogram" / "c" / "1" / "0" / "0" / "0"
    spec.write_bytes(spec.read_bytes()[: spec.stat().st_size // 2])  # truncated shard
    samples = root["samples"][:]
    samples[0] = root["audio"].shape[1] + 5  # beyond the capacity
    root["samples"][:] = samples
    status = root["status"][:]
    status[1] = 7  # a code no release writes
    root["status"][:] = status
    code, res = _verify(store, capsys)
    assert code == 1
    assert "lengths beyond the store's capacity" in res["bad"][ids[0]]
    assert res["bad"][ids[1]] == "unknown status code 7"
    for pid in ids[2:]:
        assert "unreadable data" in res["bad"][pid] or "checksum mismatch" in res["bad"][pid]
    # export of the good-audio pairs with --skip-bad: the corrupted-audio pairs are left out
    broken = tmp_path / "broken.zarr"
    shutil.copytree(store, broken)
    shutil.rmtree(broken / "loss")
    code, res = _verify(broken, capsys)
    assert code == 1 and res["store_problems"] == ["array 'loss' is missing"]


def test_export_and_report_skip_bad_pairs_on_request(tmp_path, audio_dir, capsys):
    store, root, ids = _done_store(tmp_path, audio_dir)
    audio = np.asarray(root["audio"][0])
    audio[100] += 0.5  # a silently changed sample: decodes fine, fails the checksum
    root["audio"][0] = audio
    out = tmp_path / "af"
    assert main(["export", str(store), "-o", str(out), "--format", "audiofolder",
                 "--skip-bad"]) == 0
    lines = (out / "metadata.jsonl").read_text().splitlines()
    assert len(lines) == 3 and ids[0] not in "".join(lines)
    assert main(["report", str(store), "-o", str(tmp_path / "r"), "--metrics", "run",
                 "--quiet"]) == 2
    assert f"pair {ids[0]}: its audio does not match" in capsys.readouterr().err
    assert main(["report", str(store), "-o", str(tmp_path / "r"), "--metrics", "run",
                 "--quiet", "--skip-bad"]) == 0
    failures = (tmp_path / "r" / "failures.csv").read_text()
    assert ids[0] in failures and "fails verification" in failures


def test_an_undecodable_chunk_is_left_out_by_skip_bad_and_named_without_it(tmp_path, audio_dir,
                                                                          capsys):
    """A chunk zstd cannot decode fails its own pair only: export --skip-bad keeps the others
    (the other pair of that shard included), and without it names the pair."""
    import pyarrow.parquet as pq

    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", ROWS)
    store = tmp_path / "s.zarr"
    assert _run(manifest, store) == 0
    before = _audio(store)
    f = store / "audio" / "c" / "0" / "0"
    raw = bytearray(f.read_bytes())
    raw[:64] = bytes(64)  # the first inner chunk's frame header: undecodable
    f.write_bytes(bytes(raw))
    with pytest.raises(Exception):  # noqa: B017 - the codec's own error, whatever its kind
        np.asarray(zarr.open_group(str(store), mode="r")["audio"][0:2])
    assert main(["export", str(store), "-o", str(tmp_path / "x"), "--format", "parquet"]) == 2
    assert "its data cannot be read" in capsys.readouterr().err
    out = tmp_path / "pq"
    assert main(["export", str(store), "-o", str(out), "--format", "parquet",
                 "--skip-bad"]) == 0
    kept = pq.read_table(out / "data.parquet").column("pair_id").to_pylist()
    ids = [str(p) for p in st.open_root(store)["pair"][:]]
    assert len(kept) == 3 and ids[0] not in kept and ids[1] in kept
    rows = pq.read_table(out / "data.parquet").to_pylist()
    import io

    import soundfile as sf
    for row in rows:
        audio, _ = sf.read(io.BytesIO(row["audio"]["bytes"]), dtype="float32")
        np.testing.assert_array_equal(audio, before[row["pair_id"]])


def test_a_truncated_shard_is_rewritten_by_repair_and_the_rerun_restores_the_bits(
        tmp_path, audio_dir, capsys):
    """A shard cut short has lost its index: nothing in it reads, and a rerun's write into it
    (which reads the shard to merge) failed on every attempt until repair rewrote it."""
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", ROWS)
    store = tmp_path / "s.zarr"
    assert _run(manifest, store) == 0
    before = _audio(store)
    f = store / "audio" / "c" / "1" / "0"  # pairs 3 and 4
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    code, res = _verify(store, capsys)
    ids = list(before)
    assert code == 1 and set(res["bad"]) == set(ids[2:])
    assert main(["verify", str(store), "--repair"]) == 0
    assert "reset 2 pair(s) to pending" in capsys.readouterr().out
    _rerun_restores(manifest, store, before, capsys)


@pytest.mark.parametrize("keep_one_done", [True, False])
def test_a_pending_pair_in_a_damaged_shard_fails_with_what_to_do_not_a_traceback(
        tmp_path, audio_dir, capsys, keep_one_done):
    """A pending pair whose shard was damaged (a store copied onto a full disk) failed with
    20 kB of zarr traceback and "ValueError: Stored and computed checksum do not match", and
    its hint, --retry-failed, failed the same way every time."""
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", ROWS)
    store = tmp_path / "s.zarr"
    assert _run(manifest, store) == 0
    before = _audio(store)
    root = st.open_root(store, mode="r+")
    status = root["status"][:]
    status[2 if keep_one_done else slice(2, 4)] = st.PENDING  # to run again, into their
    root["status"][...] = status  # damaged shard (with a done pair, or none: verify's
    # checks of done pairs never read it, so --repair found nothing to mend, for ever)
    f = store / "audio" / "c" / "1" / "0"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    capsys.readouterr()
    assert _run(manifest, store) == 1
    got = capsys.readouterr()
    err = got.out + got.err
    assert "Traceback" not in err, err[max(0, err.find("Traceback") - 1500):][:3000]
    assert "(manifest line " in err and "): a shard of the store it is written into is " \
        "damaged (audio: " in err
    assert f"hpc-nst verify {store} --repair" in err
    code, res = _verify(store, capsys)  # found, whether or not a done pair is in the shard
    assert code == 1 and len(res["unwritable"]) == (1 if keep_one_done else 2)
    assert main(["verify", str(store), "--repair"]) == 0
    assert "rewrote the damaged shard(s) of " in capsys.readouterr().out
    assert _verify(store, capsys)[0] == 0  # mended: no longer named
    assert main(["run", str(manifest), "-o", str(store), "--workers", "1", "--batch-size", "2",
                 "--retry-failed", "--progress-interval", "0",
                 *[x for s in TINY for x in ("--set", s)]]) == 0
    code, res = _verify(store, capsys)
    assert code == 0 and res["checked"] == 4
    after = _audio(store)
    for pid, audio in before.items():
        np.testing.assert_array_equal(after[pid], audio)


@pytest.mark.parametrize("array", ["pair", "seed", "content_path", "params_digest"])
def test_a_flipped_bit_in_the_bookkeeping_is_found_not_read_as_another_value(
        tmp_path, audio_dir, capsys, array):
    """The per-pair arrays had no checksum: a third to two thirds of single bit flips still
    decoded, as another id or seed, and verify said the store was clean while export wrote
    files under the wrong ids."""
    store, _, _ = _done_store(tmp_path, audio_dir)
    chunk = store / array / "c" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x08  # one bit, in the compressed data
    chunk.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["verify", str(store)]) == 1
    assert f"its per-pair array '{array}' is unreadable" in capsys.readouterr().out
    assert main(["export", str(store), "-o", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("array", ["params", "row", "input_stamp"])
def test_a_damaged_array_made_from_the_manifest_is_written_again_by_the_rerun(
        tmp_path, audio_dir, capsys, array):
    """Caught by its CRC, a damaged chunk of an array the manifest alone makes refused the
    store for good ("restore it, or rerun into a new store": every result lost), though the
    computation never reads it."""
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", ROWS)
    store = tmp_path / "s.zarr"
    assert _run(manifest, store) == 0
    before = _audio(store)
    chunk = store / array / "c" / "0"
    raw = bytearray(chunk.read_bytes())
    raw[len(raw) // 2] ^= 0x08
    chunk.write_bytes(bytes(raw))
    capsys.readouterr()
    assert main(["verify", str(store)]) == 1
    assert "rerun the same hpc-nst run command: it writes this array again from the " \
        "manifest" in capsys.readouterr().out
    _rerun_restores(manifest, store, before, capsys)  # nothing computed: the same audio
    root = st.open_root(store)
    assert sorted(st.read_column(root, "row").tolist()) == [2, 3, 4, 5]  # manifest lines


def test_an_unreadable_file_is_an_error_not_corruption(tmp_path):
    """A permission or I/O error is no reason to remove a shard: repair stops, naming it."""
    from hpc_nst.batch.verify import _decodes
    from hpc_nst.errors import StoreError

    class Array:
        path = "audio"

        def __init__(self, exc):
            self.exc = exc

        def __getitem__(self, where):
            raise self.exc

    with pytest.raises(StoreError, match="cannot read audio .*PermissionError.*nothing was"):
        _decodes(Array(PermissionError(13, "denied")), (0,), tmp_path)
    assert _decodes(Array(ValueError("Stored and computed checksum do not match")), (0,),
                    tmp_path) is None


def test_a_folder_that_is_no_store_is_a_usage_error_a_store_without_its_root_is_damage(
        tmp_path, audio_dir, capsys):
    """`verify FOLDER` (not a store) exited 1 as if a store were damaged."""
    (tmp_path / "folder").mkdir()
    for target in (tmp_path / "folder", audio_dir / "a.wav"):
        assert main(["verify", str(target)]) == 2
        assert "not a Zarr store (no zarr.json)" in capsys.readouterr().err
    store, _, _ = _done_store(tmp_path, audio_dir)
    (store / "zarr.json").unlink()
    assert main(["verify", str(store)]) == 1  # its arrays are there: damage, said as such
    assert "cannot open the store" in capsys.readouterr().out


def test_a_lost_status_or_checksum_chunk_is_found_and_a_rerun_restores_the_bits(
        tmp_path, audio_dir, capsys):
    """The file of a driver-written chunk deleted: with ``status`` every pair read back as
    pending ("0 done pairs", exit 0); with ``checksum`` as written by an earlier release. Now
    named, and no false alarm where every pair is pending again (zarr drops a chunk that is
    all fill: status fills with LOST, which is never written)."""
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", ROWS)
    store = tmp_path / "s.zarr"
    assert _run(manifest, store) == 0
    before = _audio(store)
    root = st.open_root(store, mode="r+")
    status = root["status"][:]
    root["status"][:] = np.full_like(status, st.PENDING)  # as --repair of every pair does
    assert (store / "status" / "c" / "0").exists()
    code, res = _verify(store, capsys)
    assert code == 0 and res["ok"] and res["done"] == 0
    root["status"][:] = status

    (store / "status" / "c" / "0").unlink()
    code, res = _verify(store, capsys)
    assert code == 1 and set(res["bad"]) == set(before)
    assert all("its status is lost" in p for p in res["bad"].values())
    assert main(["status", str(store)]) == 0
    assert "(4 whose status is lost: see hpc-nst verify)" in capsys.readouterr().out
    assert main(["report", str(store), "-o", str(tmp_path / "r0"), "--metrics", "run",
                 "--quiet"]) == 0
    assert "4 pair(s) have lost their status" in capsys.readouterr().err
    _rerun_restores(manifest, store, before, capsys)  # no --repair needed: redone

    (store / "checksum" / "c" / "0").unlink()
    code, res = _verify(store, capsys)
    assert code == 1 and res["unchecked"] == 0 and set(res["bad"]) == set(before)
    assert all("its checksum is missing" in p for p in res["bad"].values())
    # export and report do not take audio they cannot check (they took it without a word)
    assert main(["export", str(store), "-o", str(tmp_path / "x"), "--format", "wav"]) == 2
    assert "its checksum is missing, so its audio cannot be checked" in \
        capsys.readouterr().err
    assert main(["report", str(store), "-o", str(tmp_path / "r"), "--metrics", "run",
                 "--quiet"]) == 2
    assert "its checksum is missing" in capsys.readouterr().err
    assert main(["verify", str(store), "--repair"]) == 0
    _rerun_restores(manifest, store, before, capsys)


def test_damaged_records_are_repaired_and_lost_ids_or_arrays_refused(tmp_path, audio_dir,
                                                                     capsys):
    """Garbage in a chunk of a result array (``attempts``) passed verify while the rerun
    refused the store; a lost ``pair`` chunk passed verify and export wrote every output to
    one file named ".wav"; a missing array was a KeyError traceback from run and status."""
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", ROWS)
    store = tmp_path / "s.zarr"
    assert _run(manifest, store) == 0
    before = _audio(store)
    pristine = tmp_path / "pristine.zarr"
    shutil.copytree(store, pristine)

    for name in ("attempts", "samples"):
        chunk = store / name / "c" / "0"
        if name == "samples":
            chunk = next((store / name / "c").rglob("*"))
        raw = bytearray(chunk.read_bytes())
        raw[6:10] = b"\xff\xfe\xfd\xfc"
        chunk.write_bytes(bytes(raw))
        code, res = _verify(store, capsys)
        assert code == 1 and res["damaged_records"] == {name: [0, 3]}
        if name == "attempts":  # not what the data is checked with: the pairs stay done
            assert res["bad"] == {} and res["verified"] == 4
            assert _run(manifest, store) == 2  # the run points at the repair
            assert f"hpc-nst verify --repair {store} writes a damaged chunk of it again" in \
                capsys.readouterr().err
        else:
            assert set(res["bad"]) == set(before) and all(
                "its record in 'samples' is unreadable" in p for p in res["bad"].values())
        assert main(["verify", str(store), "--repair"]) == 0
        assert f"wrote again the damaged chunks of '{name}'" in capsys.readouterr().out
        _rerun_restores(manifest, store, before, capsys)

    shutil.rmtree(store)
    shutil.copytree(pristine, store)
    (store / "pair" / "c" / "0").unlink()
    code, res = _verify(store, capsys)
    lost = "(rows 0..3 of 'pair', which names the pairs) is lost"
    assert code == 1 and lost in res["store_problems"][0]
    for argv in (["export", str(store), "-o", str(tmp_path / "x")],
                 ["status", str(store)]):
        assert main(argv) == 2, argv
        assert lost in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    assert _run(manifest, store) == 2
    assert lost in capsys.readouterr().err
    # so too the other arrays naming the pairs (run said "created from a different
    # manifest", export wrote empty paths and seed -1)
    for name in ("content_path", "seed"):
        shutil.rmtree(store)
        shutil.copytree(pristine, store)
        (store / name / "c" / "0").unlink()
        code, res = _verify(store, capsys)
        assert code == 1 and f"of {name!r}, which names the pairs) is lost" in \
            res["store_problems"][0]
        assert main(["verify", str(store)]) == 1  # said so, not "0 done pair(s)"
        assert "its pairs were not checked: the store problems below come first" in \
            capsys.readouterr().out
        assert _run(manifest, store) == 2
        assert f"of {name!r}, which names the pairs) is lost" in capsys.readouterr().err

    for name in ("loss", "attempts"):
        shutil.rmtree(store)
        shutil.copytree(pristine, store)
        shutil.rmtree(store / name)
        for argv in (["status", str(store)],):
            assert main(argv) == 2, argv
            assert f"its per-pair array {name!r} is missing" in capsys.readouterr().err
        assert _run(manifest, store) == 2
        assert f"its per-pair array {name!r} is missing" in capsys.readouterr().err
