import io
import time

from hpc_nst.batch.progress import Progress


def test_batch_log_gets_live_lines_while_tasks_run():
    out = io.StringIO()
    progress = Progress(4, {"done": 1, "failed": 0, "pending": 0}, out, interval=0.5)
    time.sleep(2.3)  # no task finishes, yet elapsed time and ETA keep being reported
    progress.update(done=2, failed=1)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[hpc-nst run] 1/5 done, 0 failed, 4 remaining")
    assert any("elapsed 2s" in line for line in lines[:-1])
    assert lines[-1].startswith("[hpc-nst run] 3/5 done, 1 failed, 1 remaining")
    assert "ETA" in lines[-1] and "pairs/h" in lines[-1]


def test_quiet_prints_nothing():
    out = io.StringIO()
    progress = Progress(2, {"done": 0, "failed": 0, "pending": 0}, out, quiet=True)
    progress.update(1, 1)
    progress.close()
    assert out.getvalue() == ""


def test_interval_zero_prints_every_update_without_spinning(monkeypatch):
    """``--progress-interval 0`` (a line at each update) made the ticker wait 0 s: a busy loop
    taking a core from the workers."""
    out = io.StringIO()
    calls = []
    real = Progress._show
    monkeypatch.setattr(Progress, "_show", lambda self, force=False: (calls.append(1),
                                                                     real(self, force)))
    progress = Progress(3, {"done": 0, "failed": 0, "pending": 0}, out, interval=0.0)
    time.sleep(0.5)
    progress.update(done=1, failed=0)
    progress.update(done=1, failed=0)
    progress.close()
    assert len(calls) < 10
    counts = [line.split(",")[0] for line in out.getvalue().splitlines()]
    assert sorted(set(counts)) == ["[hpc-nst run] 0/3 done", "[hpc-nst run] 1/3 done",
                                   "[hpc-nst run] 2/3 done"]
