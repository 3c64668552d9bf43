"""The driver counts a pair's attempts from the executions its shard's tasks announce: a task
only queued on a worker that died is not counted, a rerun after a worker died is, and so is
every try of a shard the driver resubmitted."""

from __future__ import annotations

from types import SimpleNamespace

from hpc_nst.batch.dispatch import Dispatch
from hpc_nst.batch.runner import RunOptions
from hpc_nst.batch.tasks import Task
from hpc_nst.batch.worker import ATTEMPT_TOPIC, _announce_attempt


class FakeClient:
    def __init__(self) -> None:
        self.handlers = {}

    def subscribe_topic(self, topic, handler) -> None:  # noqa: ANN001
        self.handlers[topic] = handler

    def submit(self, fn, spec, key, **kwargs):  # noqa: ANN001, ANN003, ANN201
        return SimpleNamespace(key=key, release=lambda: None)


class FakeRecorder:
    def __init__(self) -> None:
        self.attempts = {}

    def record(self, outcome, attempts: int) -> None:  # noqa: ANN001
        self.attempts[outcome.index] = attempts


def test_attempts_are_the_executions_announced_for_the_shard(tmp_path):
    client, recorder = FakeClient(), FakeRecorder()
    d = Dispatch(client, None, SimpleNamespace(pairs=[]), [], tmp_path, recorder,
                 RunOptions(), None, "run1")
    announce = client.handlers[ATTEMPT_TOPIC]
    tasks = [Task(shard=s, start=s, stop=s + 1, batches=()) for s in range(3)]
    futs = {t.shard: d.submit(t) for t in tasks}
    announce((0.0, futs[0].key))  # shard 0 ran, its worker died, ran again elsewhere
    announce((1.0, futs[0].key))
    announce((2.0, futs[1].key))  # shard 1 ran once (it had also been queued on the dead one)
    announce((3.0, "hpc-nst-shard-2-try1-another-run"))  # another run's task: not ours
    resubmitted = d.submit(tasks[2])  # shard 2: lost twice (KilledWorker), resubmitted
    for _ in range(2):
        announce((4.0, futs[2].key))
    announce((5.0, resubmitted.key))
    assert (d.attempts(0), d.attempts(1), d.attempts(2)) == (2, 1, 3)
    # settling records each outcome once, with its shard's count
    d.finished = [(futs[0], [SimpleNamespace(index=0)]),
                  (resubmitted, [SimpleNamespace(index=2)])]
    d.settle()
    assert recorder.attempts == {0: 2, 2: 3} and d.finished == []
    assert d.attempts(7) == 1  # a shard nothing was heard of: its one try


def test_announcing_outside_a_worker_is_a_no_op():
    _announce_attempt()  # run_task called directly (tests, calibrate): nothing to tell
