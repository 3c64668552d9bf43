"""Checking cluster options and worker-job submission before and while a run waits on them.

- :func:`check_options`: ``--memory`` and ``--walltime`` (given, or from the dask
  ``jobqueue.<scheduler>`` configuration) are parsed up front, with an error naming the option
  and the formats the scheduler takes; options a local cluster ignores are named in a warning.
- :func:`preflight`: the worker job script is tried with ``sbatch --test-only`` (Slurm checks
  the partition, account, GPUs and limits and submits nothing); for the other schedulers the
  submit command must be on ``PATH``. A refusal is one error line with the scheduler's words,
  before any store is created.
- :class:`SubmissionWatch`: a worker-job submission refused during a run (slurmctld busy, a
  quota reached, a partition drained since) is tried again with growing pauses; one that still
  fails while no worker is connected would leave the run waiting forever (dask-jobqueue does
  not try it again), so the watch stops the run with the scheduler's words instead.
"""

from __future__ import annotations

import _thread
import asyncio
import collections
import logging
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
from dask.utils import parse_bytes

from hpc_nst.errors import ClusterError, ConfigError

if TYPE_CHECKING:
    from hpc_nst.batch.cluster import ClusterOptions

log = logging.getLogger(__name__)

SUBMIT_COMMAND = {"slurm": "sbatch", "pbs": "qsub", "sge": "qsub", "lsf": "bsub"}
#: Walltime formats each scheduler takes, as a pattern and as words for the error.
WALLTIME_FORMATS = {
    "slurm": (r"\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d+(:\d{1,2}(:\d{1,2})?)?|-1"
              r"|(?i:unlimited|infinite)",
              "minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S or UNLIMITED (e.g. 2:00:00 or 1-12)"),
    "pbs": (r"\d+(:\d{1,2}){0,3}", "seconds, M:S, H:M:S or D:H:M:S (e.g. 02:00:00)"),
    "sge": (r"\d+(:\d{1,2}){0,2}|(?i:infinity)", "seconds, M:S, H:M:S or INFINITY (e.g. "
            "02:00:00)"),
    "lsf": (r"\d+|\d+:\d{1,2}", "minutes or H:M (e.g. 120 or 2:00)"),
}
#: Options only batch schedulers use: a local cluster ignores them (``--cores``: a local
#: cluster uses the cores this process may use).
LOCAL_IGNORES = ("queue", "account", "walltime", "memory", "interface", "cores",
                 "min_workers", "job_extra")
#: dask configuration keys: how often a refused worker-job submission is tried again, and
#: the first pause (doubling each time).
RETRIES_KEY, BACKOFF_KEY = "hpc-nst.submit-retries", "hpc-nst.submit-backoff"


SCRUB_PREFIXES = ("SLURM_", "SBATCH_", "SRUN_")


def scrub_scheduler_env(environ: dict[str, str] | os._Environ = os.environ) -> list[str]:
    """Remove SLURM_*/SBATCH_*/SRUN_* variables (except SLURM_CONF); return their names."""
    names = [k for k in environ if k.startswith(SCRUB_PREFIXES) and k != "SLURM_CONF"]
    for k in names:
        del environ[k]
    return names


def slurm_kill_wait(environ: dict[str, str] | os._Environ = os.environ,
                    timeout_s: float = 5.0) -> int | None:
    """Inside a Slurm job, the seconds Slurm waits between a cancelled job's SIGTERM and its
    SIGKILL (``KillWait``, 30 by default); None elsewhere or where ``scontrol`` cannot say."""
    if not environ.get("SLURM_JOB_ID") or shutil.which("scontrol") is None:
        return None
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                             timeout=timeout_s).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"^KillWait\s*=\s*(\d+)", out, re.MULTILINE)
    return int(found.group(1)) if found else None


def grace_within(kill_wait: int) -> float:
    """A grace for the tasks in hand that ends before Slurm's SIGKILL, with a third of
    ``kill_wait`` (at least 3 s) left to save, cancel the worker jobs and release the lock."""
    return float(max(1, kill_wait - max(3, kill_wait // 3)))


def walltime_seconds(walltime: str | int | None, kind: str = "slurm") -> int | None:
    """A scheduler's walltime in seconds; None when absent or unparsable.

    Slurm: ``M``, ``M:S``, ``H:M:S``, ``D-H[:M[:S]]``; LSF: ``M`` or ``H:M``; PBS/SGE: ``S`` or
    ``H:M:S``.
    """
    if walltime is None or str(walltime).strip() == "":
        return None
    text = str(walltime).strip()
    try:
        if "-" in text:
            days, rest = text.split("-", 1)
            h, m, s = ([int(p) for p in rest.split(":")] + [0, 0])[:3]
            return int(days) * 86400 + h * 3600 + m * 60 + s
        parts = [int(p) for p in text.split(":")]
    except ValueError:
        return None
    if len(parts) == 1:
        return parts[0] * (60 if kind in ("slurm", "lsf") else 1)
    if len(parts) == 2:
        return parts[0] * 3600 + parts[1] * 60 if kind == "lsf" else parts[0] * 60 + parts[1]
    d, h, m, s = ([0] + parts)[-4:]  # PBS/Torque also take D:H:M:S
    return d * 86400 + h * 3600 + m * 60 + s


def lifetime_args(walltime: str | int | None, kind: str = "slurm") -> list[str]:
    """``--lifetime``/``--lifetime-stagger`` so that workers retire before the walltime."""
    secs = walltime_seconds(walltime, kind)
    if not secs or secs < 180:
        return []
    stagger = min(300, int(0.05 * secs))
    margin = min(600, max(60, int(0.1 * secs)))
    return ["--lifetime", f"{secs - margin - stagger}s", "--lifetime-stagger", f"{stagger}s"]


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_options(opts: ClusterOptions) -> list[str]:
    """Raise :class:`ConfigError` for a memory or walltime the scheduler cannot take; return
    warnings (options this cluster ignores)."""
    if opts.kind == "local":
        given = [_flag(k) for k in LOCAL_IGNORES if getattr(opts, k) not in (None, [])]
        if given:
            return [f"{', '.join(given)} ignored: --cluster local runs on this machine "
                    "(they configure batch-scheduler worker jobs)"]
        return []
    if opts.kind not in SUBMIT_COMMAND:  # slurm-runner: the allocation is already made
        return []
    conf = dask.config.get(f"jobqueue.{opts.kind}", default={}) or {}
    for key, check in (("memory", _check_memory), ("walltime", _check_walltime)):
        value, source = getattr(opts, key), _flag(key)
        if value is None:
            value, source = conf.get(key), f"jobqueue.{opts.kind}.{key} (dask configuration)"
        if value is not None:
            check(str(value), source, opts.kind)
    return []


def _check_memory(value: str, source: str, kind: str) -> None:
    try:
        size = parse_bytes(value)
    except (ValueError, TypeError):
        size = 0
    if size <= 0:
        raise ConfigError(f"{source} {value!r}: not an amount of memory; give a size with its "
                          "unit, e.g. 16GB or 32GiB")


def _check_walltime(value: str, source: str, kind: str) -> None:
    pattern, words = WALLTIME_FORMATS[kind]
    if not re.fullmatch(pattern, value.strip()):
        raise ConfigError(f"{source} {value!r}: not a {kind} walltime; give {words}")


def preflight(opts: ClusterOptions, script: str, missing_ok: bool = False) -> str:
    """Try the worker ``script`` on the scheduler without submitting it; return what the
    scheduler said (Slurm), or raise :class:`ClusterError` with its refusal. The test sees the
    environment the worker jobs are submitted with (``SLURM_*``/``SBATCH_*`` of a driver job
    scrubbed: ``SBATCH_PARTITION`` would override the script's ``#SBATCH -p``). ``missing_ok``
    (a dry run previewing the script elsewhere): no submit command here is a note, not an
    error."""
    command = SUBMIT_COMMAND.get(opts.kind)
    if command is None:
        return ""
    if shutil.which(command) is None:
        if missing_ok:
            return f"not tested: {command!r} is not on PATH here"
        raise ClusterError(f"--cluster {opts.kind}: {command!r} is not on PATH here; run on a "
                           f"node that submits {opts.kind} jobs, or use --cluster local")
    if opts.kind != "slurm":
        return f"{command} found; the job script is not tested before submission"
    env = dict(os.environ)
    scrub_scheduler_env(env)
    with tempfile.TemporaryDirectory(prefix="hpc-nst-preflight-") as tmp:
        path = Path(tmp) / "worker.sh"
        path.write_text(script)
        try:
            proc = subprocess.run([command, "--test-only", str(path)], capture_output=True,
                                  text=True, timeout=60, env=env)
        except subprocess.TimeoutExpired:
            log.warning("sbatch --test-only did not answer in 60 s: worker jobs untested")
            return "sbatch --test-only did not answer in 60 s"
    said = " ".join((proc.stdout + " " + proc.stderr).split())
    if proc.returncode != 0:
        raise ClusterError(f"--cluster slurm: Slurm refuses the worker job (sbatch "
                           f"--test-only): {said or f'exit code {proc.returncode}'}; check "
                           "--queue, --account, --walltime, --memory, --gpus-per-worker and "
                           "--job-extra (hpc-nst run --dry-run prints the job script)")
    return said


def _scheduler_words(exc: BaseException) -> str:
    """What the scheduler said, from dask-jobqueue's "Command exited with non-zero exit code"
    error (its stderr part when there is one), on one line."""
    text = str(exc)
    if "stderr:" in text:
        text = text.split("stderr:", 1)[1] or text
    return " ".join(text.split())


#: Submission errors given up on (said on one line by the watch); the last few are enough for
#: the filter, which sees them logged at once.
_GIVEN_UP: collections.deque[BaseException] = collections.deque(maxlen=32)


def _quiet_given_up(record: logging.LogRecord) -> bool:
    """Logging filter: drop tornado's and asyncio's tracebacks of a submission given up on."""
    exc = record.exc_info[1] if record.exc_info else None
    return exc is None or not any(exc is e for e in _GIVEN_UP)


def quiet_given_up_submissions() -> None:
    """Install :func:`_quiet_given_up` on tornado's and asyncio's loggers (once)."""
    for name in ("tornado.application", "asyncio"):
        logger = logging.getLogger(name)
        if _quiet_given_up not in logger.filters:
            logger.addFilter(_quiet_given_up)


@dataclass
class SubmissionWatch:
    """Worker-job submissions: each refused one (dask-jobqueue's RuntimeError for a submit
    command's non-zero exit) is tried again with a growing pause (``retries`` times, from
    ``backoff_s``: dask config ``hpc-nst.submit-retries`` / ``hpc-nst.submit-backoff``, default
    4 and 5 s), and a job that still cannot be submitted is counted here (dask-jobqueue would
    not try it again, and a run with no worker would wait forever)."""

    retries: int = field(default_factory=lambda: int(dask.config.get(RETRIES_KEY, 4)))
    backoff_s: float = field(default_factory=lambda: float(dask.config.get(BACKOFF_KEY, 5.0)))
    failed: int = 0  # jobs given up on
    last_error: str = ""
    fatal: str = ""
    #: set when the run ends: retries stop at once (the cluster's close waits for them)
    closing: threading.Event = field(default_factory=threading.Event)

    def job_class(self, base: type) -> type:
        """``base`` (a dask-jobqueue Job class) retrying its submission and reporting here."""
        watch = self

        class Watched(base):  # type: ignore[misc, valid-type]
            async def start(self) -> None:
                for attempt in range(watch.retries + 1):
                    try:
                        await super().start()
                        return
                    except RuntimeError as exc:  # the scheduler's refusal
                        said = _scheduler_words(exc)
                        if attempt == watch.retries or watch.closing.is_set():
                            watch.last_error, watch.failed = said, watch.failed + 1
                            _GIVEN_UP.append(exc)  # said here: tornado's traceback not
                            raise
                        pause = watch.backoff_s * 2 ** attempt
                        log.warning("worker job submission failed (try %d of %d; again in "
                                    "%.0f s): %s", attempt + 1, watch.retries + 1, pause, said)
                        until = time.monotonic() + pause
                        while time.monotonic() < until and not watch.closing.is_set():
                            await asyncio.sleep(min(0.1, pause))

        Watched.__name__ = Watched.__qualname__ = base.__name__
        return Watched

    def start(self, client: Any, cluster: Any, interval: float = 1.0) -> threading.Event:
        """Check every ``interval`` s from a thread: a job given up on while no worker is
        connected and no other job is submitted sets :attr:`fatal` and interrupts the main
        thread (with workers, or jobs queued, a warning: the run goes on). Set the returned
        event to stop (it also stops the retries)."""
        stop = self.closing
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.SIG_IGN):
            # a driver started in the background (`cmd &` in a script) ignores SIGINT, which
            # would make interrupt_main() a no-op: take it, as the run's Ctrl-C
            signal.signal(signal.SIGINT, signal.default_int_handler)

        def loop() -> None:
            seen = 0
            while not stop.wait(interval):
                if self.failed == seen:
                    continue
                seen = self.failed
                try:
                    workers = client.scheduler_info().get("workers", {})
                except Exception:  # noqa: BLE001 - the client is closing: nothing to watch
                    return
                queued = [j for j in list(getattr(cluster, "workers", {}).values())
                          if getattr(j, "job_id", None)]
                tries = self.retries + 1
                if workers or queued:
                    log.warning("a worker job could not be submitted in %d tries (%s); the "
                                "run goes on with %d connected worker(s) and %d submitted "
                                "job(s)", tries, self.last_error, len(workers), len(queued))
                    continue
                self.fatal = (f"worker jobs could not be submitted ({tries} tries each) and "
                              f"no worker is connected: {self.last_error}")
                _thread.interrupt_main()
                return

        threading.Thread(target=loop, name="hpc-nst-submission-watch", daemon=True).start()
        return stop
