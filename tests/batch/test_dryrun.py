"""``hpc-nst run --dry-run`` and ``hpc-nst calibrate``: validate, plan, estimate, submit nothing."""

from __future__ import annotations

import json
import math

import pytest

from hpc_nst.batch import cost
from hpc_nst.batch.cluster import ClusterOptions
from hpc_nst.batch.dryrun import make_plan
from hpc_nst.cli import main
from hpc_nst.config import load_job

from .conftest import TINY, write_csv

SETS = [x for s in TINY for x in ("--set", s)]


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    path = tmp_path_factory.mktemp("cal") / "cal.json"
    assert main(["calibrate", *SETS, "--batch-sizes", "1", "2", "--iterations", "3",
                 "--seconds", "0.5", "-o", str(path)]) == 0
    return path


def test_calibrate_measures_as_a_local_task_runs(tmp_path, monkeypatch, capsys):
    """On a CPU a local run's task has one torch thread (one task per core): calibrate
    measures with that, or with --threads."""
    import torch

    before = torch.get_num_threads()
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    try:
        args = ["calibrate", *SETS, "--batch-sizes", "1", "--iterations", "2", "--seconds",
                "0.3", "--device", "cpu", "-o", str(tmp_path / "c.json")]
        assert main(args) == 0
        assert "(cpu, 1 torch thread(s))" in capsys.readouterr().out
        assert main([*args, "--threads", "2"]) == 0
        assert "(cpu, 2 torch thread(s))" in capsys.readouterr().out
        assert main([*args, "--threads", "0"]) == 2
    finally:
        torch.set_num_threads(before)


def test_calibrate_writes_a_model_per_device_and_job(calibration):
    data = json.loads(calibration.read_text())
    (device, jobs), = data.items()
    assert device.startswith("CPU")
    key = cost.cost_key(load_job(overrides=dict(s.split("=") for s in TINY)))
    assert set(jobs) == {key} and set(jobs[key]) == {"1", "2"}
    assert all(v["ms_per_iteration"] > 0 and v["frames"] == 51 for v in jobs[key].values())
    # the iteration counts and the seed are not part of the key: one calibration serves all
    assert cost.cost_key(load_job(overrides={**dict(s.split("=") for s in TINY),
                                             "iterations": "500", "seed": "9"})) == key


def test_dry_run_plans_and_estimates_without_creating_anything(tmp_path, audio_dir,
                                                              calibration, capsys):
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style",
                         ["p1,a.wav,b.wav", "p2,b.wav,c.wav", "p3,d.wav,a.wav",
                          "p4,c.wav,d.wav", "p5,a.wav,d.wav"])
    store = tmp_path / "s.zarr"
    assert main(["run", str(manifest), "-o", str(store), *SETS, "--batch-size", "2",
                 "--dry-run", "--calibration", str(calibration)]) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing is created or submitted (new store" in out
    assert "pairs: 5 (0 invalid, 0 already done, 5 to run) in 3 batch(es), 3 task(s)" in out
    assert "device-hours of compute; wall time about" in out and "cal.json" in out
    assert not store.exists()
    cfg = load_job(overrides=dict(s.split("=") for s in TINY))
    job = ClusterOptions()
    short, _ = make_plan(manifest, store, cfg, 2, None, job, calibration)
    longer, _ = make_plan(manifest, store, load_job(overrides={
        **dict(s.split("=") for s in TINY), "iterations": "300"}), 2, None, job, calibration)
    assert 0 < short.device_s < longer.device_s and math.isfinite(longer.wall_s)
    # a worker running two tasks at once halves the wall time of the three tasks' work
    # (the calibration's times are per task: measured on one torch thread, as a task runs)
    one, _ = make_plan(manifest, store, cfg, 2, 1, ClusterOptions(tasks_per_worker=1),
                       calibration)
    two, _ = make_plan(manifest, store, cfg, 2, 1, ClusterOptions(tasks_per_worker=2),
                       calibration)
    assert (one.slots, two.slots) == (1, 2) and one.device_s == two.device_s
    warm = cost.from_file(calibration, cfg).warmup_s  # once, by the one worker's process
    pairs_s = one.device_s - warm
    longest = pairs_s * 2 / 5  # a task is at most 2 of the 5 pairs
    assert two.wall_s == pytest.approx(max(pairs_s / 2, longest) + warm)
    assert one.wall_s == pytest.approx(pairs_s + warm)
    # two tasks on one GPU share it: the device time is not divided (nor on slurm GPU workers)
    gpu, _ = make_plan(manifest, store, cfg, 2, 1, ClusterOptions(kind="slurm", cores=2),
                       calibration)
    assert gpu.slots == 1
    # without a model for this job: the plan, and how to get an estimate
    (tmp_path / "other.json").write_text("{}")
    assert main(["run", str(manifest), "-o", str(store), *SETS, "--dry-run",
                 "--calibration", str(tmp_path / "other.json")]) == 0
    assert "run `hpc-nst calibrate`" in capsys.readouterr().out
    # a calibration file named but missing (a typo) is an error, not "no cost model"
    assert main(["run", str(manifest), "-o", str(store), *SETS, "--dry-run",
                 "--calibration", str(tmp_path / "none.json")]) == 2
    assert "--calibration" in capsys.readouterr().err and not store.exists()


@pytest.mark.parametrize("job", ["eq", "sampler"])
def test_per_pair_methods_calibrate_and_get_an_estimate(tmp_path, audio_dir, capsys, job):
    """Methods without iterations (the dataset presets) were calibrated as zero (eq: a
    division by zero after saving zeros) or not at all (sampler: the noise it was calibrated
    on has no note), and a store of theirs gave a NaN estimate."""
    cal = tmp_path / "cal.json"
    job_file = f"jobs/{job}.toml"
    assert main(["calibrate", "--job", job_file, "--batch-sizes", "1", "--seconds", "1",
                 "-o", str(cal)]) == 0
    printed = capsys.readouterr().out
    assert "s per 1.0 s pair" in printed and "no optimisation; timed on synthetic" in printed
    assert "iterations)" not in printed  # (it said "300 iterations" for eq and sampler)
    (entry,), = [list(v.values()) for v in json.loads(cal.read_text()).values()]
    assert entry["1"]["fixed_s"] > 0 and entry["1"]["ms_per_iteration"] == 0
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style",
                         ["p1,a.wav,b.wav", "p2,b.wav,d.wav"])
    cfg = load_job(job_file)
    plan, _ = make_plan(manifest, tmp_path / "s.zarr", cfg, 1, None, ClusterOptions(), cal)
    assert 0 < plan.device_s < 60 and math.isfinite(plan.wall_s)
    assert main(["run", str(manifest), "-o", str(tmp_path / "d.zarr"), "--job", job_file,
                 "--dry-run"]) == 0
    assert f"job: method {job}, no optimisation (each pair transformed alone)" in \
        capsys.readouterr().out
    # an earlier store of the same job as the calibration
    store = tmp_path / "done.zarr"
    assert main(["run", str(manifest), "-o", str(store), "--job", job_file, "--workers", "1",
                 "--progress-interval", "0"]) == 0
    from_store, _ = make_plan(manifest, tmp_path / "s2.zarr", cfg, 1, None, ClusterOptions(),
                              store)
    assert 0 < from_store.device_s < 60 and math.isfinite(from_store.wall_s)
    assert "(CPU" in from_store.model
    # a per-pair method runs on the CPU of a GPU node too: its store serves a GPU plan
    on_gpus, _ = make_plan(manifest, tmp_path / "s2.zarr", cfg, 1, None,
                           ClusterOptions(kind="slurm", gpus=1), store)
    assert on_gpus.device_s == pytest.approx(from_store.device_s)


def test_a_store_of_cpu_pairs_gives_no_gpu_estimate_and_says_why(tmp_path, audio_dir):
    """The pairs of an optimising job that ran on a CPU were taken as GPU-hours."""
    import io

    from hpc_nst.batch.dryrun import print_plan

    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style",
                         ["p1,a.wav,b.wav", "p2,b.wav,d.wav"])
    store = tmp_path / "cpu.zarr"
    assert main(["run", str(manifest), "-o", str(store), *SETS, "--workers", "1",
                 "--progress-interval", "0"]) == 0
    cfg = load_job(overrides=dict(s.split("=") for s in TINY))
    here, _ = make_plan(manifest, tmp_path / "s.zarr", cfg, 1, None, ClusterOptions(), store,
                        device="cpu")
    assert 0 < here.device_s < 60
    gpus = ClusterOptions(kind="slurm", gpus=1)
    plan, problems = make_plan(manifest, tmp_path / "s.zarr", cfg, 1, None, gpus, store)
    assert math.isnan(plan.device_s) and not plan.model
    out = io.StringIO()
    print_plan(plan, problems, cfg, gpus, out, tmp_path / "s.zarr")
    assert f"estimate: none from {store}: it holds no done pair of this job that ran on a " \
           "GPU; run `hpc-nst calibrate`" in out.getvalue()


def _entries(data: dict) -> list[dict]:
    """Every batch-size entry of a calibration file (device -> job -> batch size)."""
    return [v for job in data.values() for entry in job.values() for v in entry.values()]


def test_each_worker_process_first_pair_warm_up_is_measured_and_planned(tmp_path, audio_dir,
                                                                        calibration, capsys):
    """A worker's first pair loads the model and the method's assets (about 1.5 s for the
    paper job, 3 s for layered-post here): calibrate measured only the steady pairs, and the
    estimate left it out for every worker."""
    data = json.loads(calibration.read_text())
    assert all(v["warmup_s"] >= 0 for v in _entries(data))
    for v in _entries(data):
        v["warmup_s"] = 100.0
    warm = tmp_path / "warm.json"
    warm.write_text(json.dumps(data))
    manifest = write_csv(audio_dir / "w.csv", "pair_id,content,style",
                         ["p1,a.wav,b.wav", "p2,b.wav,c.wav", "p3,d.wav,a.wav"])
    cfg = load_job(overrides=dict(s.split("=") for s in TINY))
    store = tmp_path / "s.zarr"
    opts = ClusterOptions(workers=2, tasks_per_worker=1)
    cold, _ = make_plan(manifest, store, cfg, 1, 1, opts, calibration)
    hot, _ = make_plan(manifest, store, cfg, 1, 1, opts, warm)
    base = cost.from_file(calibration, cfg).warmup_s
    assert hot.device_s - cold.device_s == pytest.approx(2 * (100 - base))  # two workers
    assert hot.wall_s - cold.wall_s == pytest.approx(100 - base)  # in parallel
    assert main(["calibrate", *SETS, "--batch-sizes", "1", "--iterations", "2", "--seconds",
                 "0.3", "-o", str(tmp_path / "c.json")]) == 0
    assert "once per worker process, its first pair:" in capsys.readouterr().out


def test_calibrating_on_real_pairs_sums_every_pair_and_fills_every_batch(monkeypatch):
    """--manifest calibration took the first pair's time for the whole batch (a CPU runs each
    pair alone, of its own length) and scaled a batch larger than the pairs timed linearly
    (a GPU's batch costs about the same whatever its size: batch 64 was 8 x batch 8)."""
    from types import SimpleNamespace

    import numpy as np

    from hpc_nst.engine import methods

    def fake(gpu):  # ms per iteration: a CPU 0.1 per frame of each pair, a GPU 10 per batch
        def run_method(contents, styles, cfg, seeds, device):
            frames = [1 + len(c) // cfg.stft.hop_length for c in contents]
            if gpu:
                t = {"ms_per_iteration": 10.0}
                return [SimpleNamespace(timings=t, group_pairs=len(contents)) for _ in frames]
            return [SimpleNamespace(timings={"ms_per_iteration": 0.1 * f}, group_pairs=1)
                    for f in frames]
        return run_method

    cfg = load_job(overrides=dict(s.split("=") for s in TINY))
    hop = cfg.stft.hop_length
    pairs = [(np.zeros(30 * hop, np.float32), np.zeros(hop, np.float32)),
             (np.zeros(50 * hop, np.float32), np.zeros(hop, np.float32))]
    monkeypatch.setattr(methods, "run_method", fake(gpu=False))
    cpu = cost.measure(cfg, "cpu", [1, 2], pairs=pairs)
    assert cpu[1].frames == cpu[2].frames == 41  # the median length, 31 and 51 frames
    # batch 1: 3.1 ms at 31 frames and 5.1 at 51, each scaled to 41: 4.1
    assert cpu[1].ms_per_iteration == pytest.approx(4.1)
    # batch 2: both pairs, 8.2 ms for a batch whose longest pair has 51 frames
    assert cpu[2].ms_per_iteration == pytest.approx(8.2 * 41 / 51)
    monkeypatch.setattr(methods, "run_method", fake(gpu=True))
    gpu = cost.measure(cfg, "cuda", [2, 8], pairs=pairs)
    assert gpu[8].ms_per_iteration == pytest.approx(10.0 * 41 / 51)
    assert gpu[8].ms_per_iteration == pytest.approx(gpu[2].ms_per_iteration)


def test_dry_run_renders_the_worker_job_script_and_refuses_bad_input(tmp_path, audio_dir,
                                                                     capsys):
    manifest = write_csv(audio_dir / "bad.csv", "content,style",
                         ["a.wav,b.wav", "nope.wav,b.wav"])
    store = tmp_path / "s.zarr"
    code = main(["run", str(manifest), "-o", str(store), *SETS, "--dry-run", "--cluster",
                 "slurm", "--walltime", "01:00:00", "--queue", "gpu", "--memory", "8GB"])
    out, err = capsys.readouterr()
    assert code == 2 and "a run would refuse to start" in err
    assert "invalid: line 3: pair" in out and "nope.wav: file not found" in out
    assert "#SBATCH --gres=gpu:1" in out and "#SBATCH -p gpu" in out
    assert "-m distributed.cli.dask_worker" in out and not store.exists()
    # Slurm here has no partition "gpu" (or there is no sbatch): the scheduler check says so
    assert "scheduler check: --cluster slurm: " in err
    assert main(["run", str(manifest), "-o", str(store), *SETS, "--dry-run",
                 "--skip-invalid"]) == 0


def test_auto_takes_the_calibration_of_the_device_here_not_the_first_by_name(
        tmp_path, audio_dir, calibration):
    """A calibration file with a GPU entry sorting before the CPU's: on this CPU machine the
    estimate of ``--device auto`` (the default) is the CPU's."""
    data = json.loads(calibration.read_text())
    (name, models), = data.items()
    assert name.startswith("CPU")
    gpu = {key: {b: dict(c, ms_per_iteration=c["ms_per_iteration"] / 100,
                         features_s=c["features_s"] / 100, gl_ms_per_iteration=0.01)
                 for b, c in per_batch.items()} for key, per_batch in models.items()}
    both = tmp_path / "both.json"
    both.write_text(json.dumps({"A100-SXM4-80GB": gpu, name: models}))
    manifest = write_csv(audio_dir / "m.csv", "pair_id,content,style", ["p1,a.wav,b.wav"])
    cfg = load_job(overrides=dict(s.split("=") for s in TINY))
    here, _ = make_plan(manifest, tmp_path / "s.zarr", cfg, 2, None, ClusterOptions(), both)
    cpu_only, _ = make_plan(manifest, tmp_path / "s.zarr", cfg, 2, None, ClusterOptions(),
                            calibration)
    assert "(CPU" in here.model and here.device_s == pytest.approx(cpu_only.device_s)


def test_calibrate_refuses_bad_output_and_lengths_before_measuring(tmp_path, capsys):
    """A folder as -o, a JSON list there, --seconds nan or inf: tracebacks after the work."""
    folder = tmp_path / "cal"
    folder.mkdir()
    a_list = tmp_path / "l.json"
    a_list.write_text("[1, 2]")
    for extra, says in ((["-o", str(folder)], "a folder; give the calibration file's name"),
                        (["-o", str(a_list)], "not a calibration file (JSON list, not an "
                                              "object)"),
                        (["--seconds", "nan"], "--seconds nan: give a pair length"),
                        (["--seconds", "inf"], "--seconds inf: give a pair length"),
                        (["--seconds", "0.01"], "--seconds 0.01: give a pair length")):
        assert main(["calibrate", "--job", "eq", "--batch-sizes", "1",
                     *(["-o", str(tmp_path / "c.json")] if extra[0] != "-o" else []),
                     *extra]) == 2
        assert says in capsys.readouterr().err
    assert a_list.read_text() == "[1, 2]" and not (tmp_path / "c.json").exists()


@pytest.mark.parametrize("job", [["--job", "eq"], SETS])
def test_calibrate_times_real_pairs_of_a_manifest(tmp_path, audio_dir, capsys, job):
    """A per-pair method's time depends on the notes, not only the length (``layered``: 0.30 s
    per synthetic 2.56 s pair here, 0.59 s per real one): ``--manifest`` times the user's own
    pairs, spread over the manifest (a row whose audio cannot be read passed over for the
    next), scaled to their median length; ``--seconds`` with it, and a manifest without a
    usable pair, are refused before any work."""
    manifest = write_csv(audio_dir / "cal.csv", "pair_id,content,style",
                         ["p1,a.wav,b.wav", "p2,nope.wav,b.wav", "p3,c.wav,d.wav",
                          "p4,d.wav,a.wav", "p5,truncated.flac,b.wav"])
    cal = tmp_path / "cal.json"
    args = ["calibrate", *job, "--batch-sizes", "1", "2", "--iterations", "2", "-o", str(cal),
            "--manifest", str(manifest), "--pairs", "2"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert f"timed on 2 pair(s) of {manifest}, scaled to their median length" in printed
    # p1 and p5 asked for (the first and the last valid row); p5's audio is cut short, so the
    # next unused row, p3, is timed instead: contents of 51 and 31 frames, median 41
    assert "s per 0.41 s pair" in printed
    (entries,), = [list(v.values()) for v in json.loads(cal.read_text()).values()]
    assert {b: c["frames"] for b, c in entries.items()} == {"1": 41, "2": 41}
    assert all(c["fixed_s"] + c["ms_per_iteration"] > 0 for c in entries.values())
    cfg = load_job("eq") if job[0] == "--job" else load_job(
        overrides=dict(s.split("=") for s in TINY))
    plan, _ = make_plan(manifest, tmp_path / "s.zarr", cfg, 1, None, ClusterOptions(), cal)
    assert 0 < plan.device_s < 60
    for extra, says in ((["--seconds", "1"], "--seconds: not with --manifest"),
                        (["--pairs", "0"], "--pairs and --threads must be positive")):
        assert main([*args, *extra]) == 2 and says in capsys.readouterr().err
    bad = write_csv(audio_dir / "bad.csv", "pair_id,content,style", ["p1,nope.wav,b.wav"])
    assert main([*args[:-4], "--manifest", str(bad)]) == 2
    assert "no valid pair to time" in capsys.readouterr().err


def test_a_calibration_file_with_keys_of_a_later_release_still_loads(calibration, tmp_path):
    """A calibration file is shared (~/.cache/hpc_nst): BatchCost(**entry) failed with a
    TypeError traceback on a key it did not know (warmup_s broke the release before)."""
    data = json.loads(calibration.read_text())
    for v in _entries(data):
        v["from_the_future_s"] = 1.0
    later = tmp_path / "later.json"
    later.write_text(json.dumps(data))
    cfg = load_job(overrides=dict(s.split("=") for s in TINY))
    model = cost.from_file(later, cfg)
    assert model is not None and model.batches[1].ms_per_iteration > 0
    assert "warm-up" not in model.source
    for v in _entries(data):  # one of an earlier release, without the warm-up: said so
        del v["warmup_s"]
    later.write_text(json.dumps(data))
    model = cost.from_file(later, cfg)
    assert model.warmup_s == 0 and "calibrate again to include it" in model.source
