"""Cluster options: jobqueue config fallback, GPU requests, lifetimes, scrubbed environment."""

from __future__ import annotations

import dask
import pytest

from hpc_nst.batch.cluster import (
    ClusterOptions,
    _jobqueue_kwargs,
    lifetime_args,
    scrub_scheduler_env,
    walltime_seconds,
    worker_slots,
)
from hpc_nst.errors import ConfigError


@pytest.mark.parametrize(("text", "kind", "seconds"), [
    ("01:00:00", "slurm", 3600), ("30", "slurm", 1800), ("10:30", "slurm", 630),
    ("1-12", "slurm", 129600), ("2-00:30:00", "slurm", 174600), ("01:30", "lsf", 5400),
    ("90", "lsf", 5400), ("3600", "sge", 3600), (None, "slurm", None), ("soon", "pbs", None),
])
def test_walltime_seconds(text, kind, seconds):
    assert walltime_seconds(text, kind) == seconds


def test_lifetime_is_under_the_walltime():
    args = lifetime_args("01:00:00")
    assert args == ["--lifetime", "3060s", "--lifetime-stagger", "180s"]
    assert 3060 + 180 < 3600
    assert lifetime_args("24:00:00")[1] == f"{86400 - 600 - 300}s"
    assert lifetime_args("00:02:00") == [] and lifetime_args(None) == []


def test_scrub_keeps_slurm_conf():
    env = {"SLURM_JOB_ID": "1", "SBATCH_PARTITION": "x", "SRUN_CPUS_PER_TASK": "2",
           "SLURM_CONF": "/etc/slurm/slurm.conf", "PATH": "/bin"}
    assert sorted(scrub_scheduler_env(env)) == ["SBATCH_PARTITION", "SLURM_JOB_ID",
                                                "SRUN_CPUS_PER_TASK"]
    assert env == {"SLURM_CONF": "/etc/slurm/slurm.conf", "PATH": "/bin"}


def test_bare_config_gets_one_gpu_one_process_two_tasks_and_a_lifetime():
    with dask.config.set({"jobqueue.slurm": {"walltime": "02:00:00",
                                             "job-extra-directives": [],
                                             "worker-extra-args": []}}):
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", queue="gpu"))
    assert kw["queue"] == "gpu" and kw["processes"] == 1
    # one GPU; requeued when preempted, SIGUSR1 to the batch shell 10 % (<= 300 s) before
    # the limit, which the worker itself (exec, no nanny) gets and drains on
    assert kw["job_extra_directives"] == ["--gres=gpu:1", "--requeue", "--signal=B:USR1@300"]
    assert kw["nanny"] is False and kw["python"].startswith("exec ")
    args = kw["worker_extra_args"]
    # two tasks at a time on the GPU (each asks for GPU=1), so two threads: cores 2
    assert args[:2] == ["--resources", "GPU=2"] and "--lifetime" in args
    assert kw["cores"] == 2


def test_configured_values_are_kept_not_duplicated():
    conf = {"processes": 1, "cores": 8, "memory": "48GB", "walltime": "01:00:00",
            "job-extra-directives": ["--gpus=1"],
            "worker-extra-args": ["--resources", "GPU=1", "--lifetime", "50m"]}
    with dask.config.set({"jobqueue.slurm": conf}):
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm"))
        assert "cores" not in kw and "processes" not in kw and "memory" not in kw
        assert kw["job_extra_directives"] == ["--gpus=1", "--requeue", "--signal=B:USR1@300"]
        assert kw["worker_extra_args"] == ["--resources", "GPU=1", "--lifetime", "50m"]
        # a walltime given on the command line replaces the configured lifetime
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", walltime="00:20:00"))
        assert kw["worker_extra_args"][:2] == ["--resources", "GPU=1"]
        assert kw["worker_extra_args"][2:4] == ["--lifetime", f"{1200 - 120 - 60}s"]


@pytest.mark.parametrize(("kind", "directive"), [("pbs", "-l ngpus=1"), ("sge", "-l gpu=1"),
                                                 ("lsf", '-gpu "num=1"')])
def test_other_schedulers_get_their_gpu_request(kind, directive):
    with dask.config.set({f"jobqueue.{kind}": {"job-extra-directives": [],
                                               "resource-spec": None}}):
        kw = _jobqueue_kwargs(ClusterOptions(kind=kind, account="proj"))
    assert directive in kw["job_extra_directives"]
    assert kw.get("project" if kind in ("sge", "lsf") else "account") == "proj"
    with dask.config.set({f"jobqueue.{kind}": {"resource-spec": "select=1:ngpus=1"}}):
        kw = _jobqueue_kwargs(ClusterOptions(kind=kind))
    assert directive not in kw["job_extra_directives"]


def test_cpu_only_workers():
    with dask.config.set({"jobqueue.slurm": {"job-extra-directives": [],
                                             "worker-extra-args": []}}):
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", gpus=0))
    assert kw["job_extra_directives"] == ["--requeue", "--signal=B:USR1@120"]
    assert "--resources" not in kw["worker_extra_args"]
    with dask.config.set({"jobqueue.slurm": {"job-extra-directives": ["--no-requeue",
                                                                     "--signal=USR2@60"]}}):
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", gpus=0))
    assert kw["job_extra_directives"] == ["--no-requeue", "--signal=USR2@60"]  # configured
    # the shipped example configuration's GPU request and GPU=2 slots are for GPU jobs:
    # --gpus-per-worker 0 leaves them out (they were kept, and a CPU partition refuses them)
    with dask.config.set({"jobqueue.slurm": {
            "job-extra-directives": ["--gres=gpu:1", "--qos=normal"],
            "worker-extra-args": ["--resources", "GPU=2,MEM=1", "--lifetime", "55m"]}}):
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", gpus=0, job_extra=["--gpus=0"]))
    assert kw["job_extra_directives"][:2] == ["--qos=normal", "--gpus=0"]  # the user's kept
    assert not any("gres" in d for d in kw["job_extra_directives"])
    assert kw["worker_extra_args"][:4] == ["--resources", "MEM=1", "--lifetime", "55m"]
    # only GPU requests go: a partition, account, exclusion or constraint naming "gpu" stays
    others = ["-p gpu-cpu", "--account=gpu-proj", "--exclude=gpu[01-04]", "--constraint=nogpu"]
    with dask.config.set({"jobqueue.slurm": {
            "job-extra-directives": ["--gpus-per-node=1", *others],
            "worker-extra-args": ["--resources=GPU=2"]}}):
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", gpus=0))
        assert kw["job_extra_directives"][:4] == others
        assert "--resources=GPU=2" not in kw["worker_extra_args"]
        # and with GPUs, such a directive is no GPU request: one is added
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm"))
        assert "--gres=gpu:1" not in kw["job_extra_directives"]  # --gpus-per-node is one
    with dask.config.set({"jobqueue.slurm": {"job-extra-directives": ["-p gpu-cpu"]}}):
        assert "--gres=gpu:1" in _jobqueue_kwargs(ClusterOptions(kind="slurm"))[
            "job_extra_directives"]


def test_tasks_per_worker_option_config_and_threads():
    bare = {"jobqueue.slurm.job-extra-directives": [], "jobqueue.slurm.worker-extra-args": [],
            "jobqueue.slurm.cores": None}
    with dask.config.set(bare):
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", tasks_per_worker=1))
        assert kw["worker_extra_args"][:2] == ["--resources", "GPU=1"] and kw["cores"] == 1
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", tasks_per_worker=3))
        assert kw["worker_extra_args"][:2] == ["--resources", "GPU=3"] and kw["cores"] == 3
        # cores given: a worker has cores // processes threads, so no more tasks than that
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", tasks_per_worker=4, cores=2))
        assert kw["worker_extra_args"][:2] == ["--resources", "GPU=2"] and kw["cores"] == 2
        with dask.config.set({"hpc-nst.tasks-per-worker": 3}):  # the configuration's value
            kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", cores=8))
            assert kw["worker_extra_args"][:2] == ["--resources", "GPU=3"]
            # the command line wins over the configuration
            kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", cores=8, tasks_per_worker=1))
            assert kw["worker_extra_args"][:2] == ["--resources", "GPU=1"]
        # CPU worker jobs run one task per core: the option would be ignored, so it is refused
        with pytest.raises(ConfigError, match="--cores"):
            _jobqueue_kwargs(ClusterOptions(kind="slurm", gpus=0, tasks_per_worker=2))
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", gpus=0))
        assert "--resources" not in kw["worker_extra_args"] and kw["cores"] == 1
    # a configured GPU=n stands unless the number is given; other resources are kept
    configured = {**bare, "jobqueue.slurm.worker-extra-args": ["--resources", "GPU=2 MEM=4"]}
    with dask.config.set(configured):
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", cores=4))
        assert kw["worker_extra_args"][:2] == ["--resources", "GPU=2 MEM=4"]
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", cores=4, tasks_per_worker=1))
        assert kw["worker_extra_args"][:2] == ["--resources", "GPU=1 MEM=4"]
    with dask.config.set({**bare, "jobqueue.slurm.worker-extra-args": ["--resources", "MEM=4"]}):
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", cores=4))
        assert kw["worker_extra_args"][:2] == ["--resources", "GPU=2 MEM=4"]  # else never run
    for bad in (0, -1, "two"):
        with dask.config.set({"hpc-nst.tasks-per-worker": bad}), \
                pytest.raises(ConfigError, match="hpc-nst.tasks-per-worker"):
            worker_slots(ClusterOptions(), 1)
    assert worker_slots(ClusterOptions(), 1) == 2 and worker_slots(ClusterOptions(), 0) == 1


def test_local_cluster_runs_that_many_tasks_per_worker(monkeypatch):
    """A local CPU worker with two task slots: two threads, each task half the cores."""
    from hpc_nst.batch.cluster import make_cluster

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    handle = make_cluster(ClusterOptions(workers=1, gpus=0, tasks_per_worker=2))
    try:
        assert handle.slots == 2 and handle.threads == 2 and handle.resources is None
        assert "2 task(s) at a time" in handle.description
        workers = handle.cluster.scheduler_info["workers"].values()
        assert [w["nthreads"] for w in workers] == [2]
    finally:
        handle.cluster.close()
    # by default: one task per granted core, one torch thread each
    handle = make_cluster(ClusterOptions(workers=2, gpus=0))
    try:
        assert (handle.slots, handle.threads) == (2, 1)
        workers = handle.cluster.scheduler_info["workers"].values()
        assert [w["nthreads"] for w in workers] == [2, 2]
    finally:
        handle.cluster.close()


def test_planned_slots_match_what_the_cluster_would_run(monkeypatch):
    """The dry run's estimate divides by the tasks each worker runs at once, computed as the
    cluster would be built (nothing is started)."""
    from hpc_nst.batch.cluster import local_layout, planned_slots

    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    assert planned_slots(ClusterOptions(gpus=0)) == 4
    assert local_layout(ClusterOptions(gpus=0)).threads == 1
    assert planned_slots(ClusterOptions(gpus=0, workers=2)) == 2
    assert planned_slots(ClusterOptions(gpus=0, tasks_per_worker=1)) == 1
    assert local_layout(ClusterOptions(gpus=0, tasks_per_worker=1)).threads == 4
    bare = {"jobqueue.slurm.job-extra-directives": [], "jobqueue.slurm.worker-extra-args": [],
            "jobqueue.slurm.cores": None}
    with dask.config.set(bare):
        assert planned_slots(ClusterOptions(kind="slurm")) == 2  # GPU=2, cores 2
        assert planned_slots(ClusterOptions(kind="slurm", cores=8, tasks_per_worker=3)) == 3
        assert planned_slots(ClusterOptions(kind="slurm", gpus=0, cores=8)) == 8  # a task a core
    assert planned_slots(ClusterOptions(kind="slurm-runner")) == 2


def test_generated_slurm_job_script():
    """The real SLURMCluster turns our options into the expected #SBATCH lines (no submission)."""
    from hpc_nst.batch.cluster import _import_jobqueue

    SLURMCluster = _import_jobqueue().SLURMCluster
    with dask.config.set({"jobqueue.slurm.job-extra-directives": [],
                          "jobqueue.slurm.worker-extra-args": [],
                          "jobqueue.slurm.walltime": "01:00:00"}):
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", cores=2, memory="4GB",
                                             interface="lo"))
        with SLURMCluster(**kw) as cluster:
            script = cluster.job_script()
    assert "#SBATCH --gres=gpu:1" in script and "#SBATCH -t 01:00:00" in script
    assert "--resources GPU=2" in script and "--lifetime 3060s" in script
    assert "--lifetime-stagger 180s" in script and "--nthreads 2" in script


def test_container_launcher_reaches_the_worker_job_script(monkeypatch):
    """HPC_NST_PYTHON of several words (a container) and HPC_NST_SETUP go into the worker job
    script as written; a configured jobqueue.slurm.python wins."""
    from hpc_nst.batch.cluster import _import_jobqueue

    SLURMCluster = _import_jobqueue().SLURMCluster
    monkeypatch.setenv("HPC_NST_PYTHON", "apptainer exec --nv /images/hpc-nst.sif python")
    monkeypatch.setenv("HPC_NST_SETUP", "module load apptainer")
    # [] is dask-jobqueue's default and the shipped slurm/jobqueue.yaml's: HPC_NST_SETUP was
    # added only where the key was None, so it never reached a worker job
    for prologue in (None, []):
        with dask.config.set({"jobqueue.slurm.job-extra-directives": [],
                              "jobqueue.slurm.worker-extra-args": [],
                              "jobqueue.slurm.python": None,
                              "jobqueue.slurm.job-script-prologue": prologue}):
            kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", interface="lo"))
            with SLURMCluster(**kw) as cluster:
                script = cluster.job_script()
        assert "\nexec apptainer exec --nv /images/hpc-nst.sif python -m distributed.cli." \
            "dask_worker" in script
        assert "\nmodule load apptainer\n" in script, prologue
    with dask.config.set({"jobqueue.slurm.job-script-prologue": ["source /opt/env.sh"]}):
        kw = _jobqueue_kwargs(ClusterOptions(kind="slurm", interface="lo"))
    assert kw.get("job_script_prologue") is None  # a configured prologue stands (documented)
    with dask.config.set({"jobqueue.slurm.python": "/opt/py/bin/python"}):
        assert _jobqueue_kwargs(ClusterOptions(kind="slurm"))["python"] == \
            "exec /opt/py/bin/python"


def test_local_threads_follow_the_cores_slurm_grants():
    from hpc_nst.batch.cluster import available_cores

    assert available_cores({"SLURM_CPUS_PER_TASK": "3"}) == 3
    import os

    assert available_cores({}) == len(os.sched_getaffinity(0))
    assert available_cores({"SLURM_CPUS_PER_TASK": ""}) == len(os.sched_getaffinity(0))


def test_rendering_the_worker_job_script_creates_no_log_folder(tmp_path, monkeypatch):
    """`run --dry-run` ("nothing is created") made logs/dask-workers/: dask-jobqueue creates
    the log folder when it renders a job script."""
    from hpc_nst.batch.cluster import _import_jobqueue, worker_job_script

    _import_jobqueue()  # (its defaults first: the config set below changes one key)
    (tmp_path / "kept").mkdir()
    for logs in (tmp_path / "logs" / "dask-workers", tmp_path / "kept" / "w"):
        with dask.config.set({"jobqueue.slurm.log-directory": str(logs)}):
            script = worker_job_script(ClusterOptions(kind="slurm", interface="lo"))
        assert str(logs) in script and not logs.exists()
    assert not (tmp_path / "logs").exists() and (tmp_path / "kept").is_dir()
