"""``hpc-nst run``/``calibrate`` arguments refused up front: worker counts, device names, a CUDA
device on a machine without one; and the summary's throughput counts pairs done."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpc_nst.batch.cluster import ClusterOptions, local_layout
from hpc_nst.batch.runner import RunSummary
from hpc_nst.cli import main
from hpc_nst.cli.run_cmd import check_local_device, print_summary
from hpc_nst.errors import ConfigError, UsageError

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "manifests" / "demo.csv"


@pytest.mark.parametrize("flag, value", [("--workers", "-1"), ("--workers", "0"),
                                         ("--workers", "two"), ("--min-workers", "-1"),
                                         ("--cores", "0")])
def test_worker_counts_below_one_are_refused(tmp_path, capsys, flag, value):
    store = tmp_path / "x.zarr"
    with pytest.raises(SystemExit) as exc:
        main(["run", str(DEMO), "-o", str(store), "--dry-run", f"{flag}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}" in err and "whole number >=" in err
    assert not store.exists()


@pytest.mark.parametrize("flag, value", [("--grace", "-5"), ("--grace", "soon"),
                                         ("--progress-interval", "-1"),
                                         ("--progress-interval", "nan")])
def test_durations_below_zero_are_refused(tmp_path, capsys, flag, value):
    store = tmp_path / "x.zarr"
    with pytest.raises(SystemExit) as exc:
        main(["run", str(DEMO), "-o", str(store), "--dry-run", f"{flag}={value}"])
    assert exc.value.code == 2
    assert f"argument {flag}: '{value}': give a number of seconds >= 0" in capsys.readouterr().err


def test_memory_and_walltime_are_checked_and_a_local_run_says_it_ignores_them(
        tmp_path, capsys, caplog):
    store = tmp_path / "x.zarr"
    assert main(["run", str(DEMO), "-o", str(store), "--cluster", "slurm", "--dry-run",
                 "--memory", "lots"]) == 2
    assert "error: --memory 'lots': not an amount of memory" in capsys.readouterr().err
    assert main(["run", str(DEMO), "-o", str(store), "--cluster", "pbs", "--dry-run",
                 "--walltime", "banana"]) == 2
    assert "error: --walltime 'banana': not a pbs walltime" in capsys.readouterr().err
    assert main(["run", str(DEMO), "-o", str(store), "--dry-run", "--walltime", "1:00:00",
                 "--queue", "gpu"]) == 0
    assert "--queue, --walltime ignored: --cluster local runs on this machine" in caplog.text
    assert not store.exists()


def test_cluster_refuses_a_layout_without_workers():
    with pytest.raises(ConfigError, match="--workers -1"):
        local_layout(ClusterOptions(workers=-1))
    with pytest.raises(ConfigError, match="--workers 0"):
        local_layout(ClusterOptions(workers=0))
    assert local_layout(ClusterOptions(workers=2)).workers == 2


@pytest.mark.parametrize("command", ["run", "calibrate"])
@pytest.mark.parametrize("device", ["cudaa", "gpu", "cuda:x", "cuda:"])
def test_unknown_device_names_are_refused(tmp_path, capsys, command, device):
    store = tmp_path / "x.zarr"
    args = ["run", str(DEMO), "-o", str(store)] if command == "run" else ["calibrate"]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--device", device])
    assert exc.value.code == 2
    assert "argument --device" in capsys.readouterr().err
    assert not store.exists()


def test_cuda_without_cuda_on_the_local_cluster_is_refused_before_the_store(
        tmp_path, capsys, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    store = tmp_path / "x.zarr"
    for extra in ([], ["--dry-run"]):
        assert main(["run", str(DEMO), "-o", str(store), "--device", "cuda", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert "--device cuda" in err and "no CUDA device" in err and "--device cpu" in err
        assert not store.exists()
    assert main(["run", str(DEMO), "-o", str(store), "--device", "cuda:0"]) == 2
    assert not store.exists()


def test_cuda_index_beyond_the_devices_is_refused(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    check_local_device("cuda:0", "local")
    with pytest.raises(UsageError, match="only 1 CUDA device"):
        check_local_device("cuda:1", "local")


def test_cuda_for_batch_scheduler_workers_is_not_checked_here(monkeypatch):
    """A Slurm run asking for cuda from a CPU login node: the worker jobs have the GPUs."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for kind in ("slurm", "pbs", "slurm-runner"):
        check_local_device("cuda", kind)
    check_local_device("cpu", "local")
    check_local_device("auto", "local")


def _summary(done: int, skipped: int, ran: int) -> RunSummary:
    return RunSummary(Path("s.zarr"), total=4, done=done, failed=4 - done, pending=0, ran=ran,
                      skipped=skipped, wall_s=118.8)


def test_summary_rate_counts_pairs_done_not_scheduled(capsys):
    print_summary(_summary(done=0, skipped=0, ran=4))
    err = capsys.readouterr().err
    assert "this run: 4 pairs (0 done) in 118.8 s" in err and "pairs/h" not in err
    print_summary(_summary(done=3, skipped=1, ran=3))  # 2 done now, in 118.8 s
    err = capsys.readouterr().err
    assert "this run: 3 pairs (2 done) in 118.8 s (61 pairs/h done)" in err


def test_logging_options_also_after_nested_commands():
    from hpc_nst.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["dataset", "triplets", "x", "-v"]).verbose == 1
    assert parser.parse_args(["-v", "status", "s.zarr"]).verbose == 1
    args = parser.parse_args(["status", "s.zarr", "-vv", "--log-file", "l.log"])
    assert args.verbose == 2 and str(args.log_file) == "l.log"


@pytest.mark.parametrize("command", [["classify", "x.wav"], ["train", "m.csv", "-o", "r"],
                                     ["transfer", "a.wav", "b.wav", "-o", "o.wav"],
                                     ["run", "m.csv", "-o", "s.zarr"]])
def test_every_device_flag_names_the_choices(capsys, command) -> None:
    """`classify`, `train` and `transfer` passed any text to torch: a RuntimeError traceback
    listing torch's twenty device types."""
    with pytest.raises(SystemExit) as exc:
        main([*command, "--device", "bogus"])
    assert exc.value.code == 2
    assert "'bogus': choose auto, cpu, cuda or cuda:N" in capsys.readouterr().err


def test_a_dry_run_says_the_left_out_gpu_requests_once(tmp_path, caplog):
    """The configuration's GPU requests left out of CPU worker jobs were logged twice by a dry
    run (the plan's slot count and the job script each computed the job's options)."""
    import dask
    import dask_jobqueue  # noqa: F401  (its defaults first: the set below changes two keys)

    store = tmp_path / "x.zarr"
    with dask.config.set({"jobqueue.slurm.job-extra-directives": ["--gres=gpu:1"],
                          "jobqueue.slurm.worker-extra-args": ["--resources", "GPU=2"]}):
        assert main(["run", str(DEMO), "-o", str(store), "--cluster", "slurm", "--dry-run",
                     "--gpus-per-worker", "0"]) == 0
    said = [r for r in caplog.records if "GPU requests left out" in r.getMessage()]
    assert len(said) == 1 and "--gres=gpu:1" in said[0].getMessage()
    assert not store.exists()


def test_the_default_grace_ends_before_slurms_kill_wait(monkeypatch, tmp_path, capsys):
    """Inside a Slurm job, a plain scancel kills the driver KillWait seconds after SIGTERM:
    the default grace (60 s) ended later, so the driver died mid-wait."""
    from hpc_nst.batch.submission import grace_within, slurm_kill_wait
    from hpc_nst.cli.run_cmd import _grace

    assert [grace_within(k) for k in (5, 30, 120)] == [2.0, 20.0, 80.0]
    scontrol = tmp_path / "scontrol"
    scontrol.write_text("#!/bin/sh\necho 'KillTimeout  = 9'\necho 'KillWait                = 30 "
                        "sec'\n")
    scontrol.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert slurm_kill_wait() is None and _grace(None) == (60.0, 60.0)  # not in a Slurm job
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert slurm_kill_wait() == 30
    # after Ctrl-C or SIGUSR1 (no kill follows) the whole 60 s; after SIGTERM 20
    assert _grace(None) == (60.0, 20.0) and _grace(45.0) == (45.0, 45.0)  # asked: as asked
    assert "grace 20 s for the tasks in hand on SIGTERM (Slurm's KillWait is 30 s" in \
        capsys.readouterr().err


def test_a_sigterm_after_a_sigusr1_still_shortens_the_grace():
    """SIGUSR1 (the job script's time-limit warning) keeps the whole grace; a SIGTERM within
    2 s of it was dropped as a repeat, and with it the KillWait bound."""
    import signal

    from hpc_nst.cli import run_cmd

    run_cmd._terminated[0], run_cmd._term_seen[0] = 0, False
    run_cmd._last_term[0] = -run_cmd.TERM_REPEAT_S
    with pytest.raises(KeyboardInterrupt):
        run_cmd._sigterm(signal.SIGUSR1, None)
    assert run_cmd._terminated[0] == signal.SIGUSR1 and not run_cmd._term_seen[0]
    run_cmd._sigterm(signal.SIGTERM, None)  # a repeat: no second interrupt, but seen
    assert run_cmd._term_seen[0]
    run_cmd._terminated[0], run_cmd._term_seen[0] = 0, False
