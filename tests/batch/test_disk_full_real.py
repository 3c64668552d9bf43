"""A real full disk (a small tmpfs, where the tests may mount): creating a store and writing
a report end in one error naming the folder and what to do, exit code 2, nothing half made."""

from __future__ import annotations

import os
import subprocess

import pytest

from hpc_nst.cli import main

from .conftest import TINY, write_csv

pytestmark = pytest.mark.slow


@pytest.fixture
def small_disk(tmp_path):
    """A 256 KiB tmpfs (root only, as in CI; skipped elsewhere)."""
    where = tmp_path / "small"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)


def _run(manifest, store) -> int:
    return main(["run", str(manifest), "-o", str(store), "--workers", "1", "--quiet",
                 "--progress-interval", "0", *[x for s in TINY for x in ("--set", s)]])


def test_a_full_disk_when_the_store_is_created_or_a_report_written(small_disk, tmp_path,
                                                                  audio_dir, capsys):
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style",
                         [f"p{i},a.wav,b.wav" for i in range(40)])
    (small_disk / "fill").write_bytes(b"\0" * 200_000)  # leaves too little for the store
    assert _run(manifest, small_disk / "s.zarr") == 2
    err = capsys.readouterr().err
    assert "s.zarr: cannot create the store (No space left on device)" in err
    assert "Traceback" not in err and sorted(p.name for p in small_disk.iterdir()) == ["fill"]

    store = tmp_path / "s.zarr"
    assert _run(manifest, store) == 0
    (small_disk / "fill").unlink()
    (small_disk / "fill").write_bytes(b"\0" * 240_000)
    capsys.readouterr()
    code = main(["report", str(store), "-o", str(small_disk / "r"), "--metrics", "run",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "r: cannot write the report (No space left on device)" in err, err
    assert "Traceback" not in err
    assert not [p for p in (small_disk / "r").rglob(".partial*")]  # its staging removed
