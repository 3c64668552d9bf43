"""The message of a store lock held by another run names its owner readably."""

from __future__ import annotations

import pytest

from hpc_nst.batch.lock import LOCK_NAME, StoreLock, describe_owner
from hpc_nst.errors import StoreError


def test_lock_held_elsewhere_names_host_pid_and_start(tmp_path):
    (tmp_path / LOCK_NAME).write_text("vm-elsewhere 22448 2026-12-07T08:55:32\n")
    with pytest.raises(StoreError) as exc:
        with StoreLock(tmp_path):
            pass
    msg = str(exc.value)
    assert "(host vm-elsewhere, pid 22448, started 2026-12-07T08:55:32)" in msg
    assert "host pid started" not in msg and f"delete {tmp_path / LOCK_NAME}" in msg


def test_describe_owner():
    assert describe_owner("n1 7 2026-01-02T03:04:05 slurm=51:2\n") == \
        "host n1, pid 7, started 2026-01-02T03:04:05, Slurm job 51 (restart 2)"
    assert describe_owner("  ") == "owner unknown: the lock file is empty"
    assert describe_owner("n1 7") == "host n1, pid 7"
