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
