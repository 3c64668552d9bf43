"""Output files: refused up front where they cannot be written, errors naming the file asked
for (not the temporary file beside it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpc_nst.errors import UsageError
from hpc_nst.fsutil import atomic_write_text, check_output_file

UNWRITABLE = Path("/proc/hpc-nst-test/out.json")  # no file can be created under /proc


def test_an_output_that_cannot_be_written_is_refused_before_the_work(tmp_path):
    with pytest.raises(UsageError, match=r"-o /proc/hpc-nst-test/out.json: cannot write there"):
        check_output_file(UNWRITABLE, "-o", "a file", "out.json")
    with pytest.raises(UsageError, match="a folder; give a file"):
        check_output_file(tmp_path, "-o", "a file", "out.json")
    check_output_file(tmp_path / "new" / "out.json", "-o", "a file", "out.json")
    assert list(tmp_path.iterdir()) == []  # the probe leaves nothing behind


def test_an_atomic_write_that_fails_names_the_file_asked_for(tmp_path):
    with pytest.raises(OSError) as err:
        atomic_write_text(Path("/proc/out.json"), "{}")
    assert err.value.filename == "/proc/out.json" and ".out.json." not in str(err.value)
    atomic_write_text(tmp_path / "a.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
