"""Training on a tiny rendered set: learning, checkpoint round trip, resume, CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from hpc_nst.cli import main
from hpc_nst.config import STFTConfig
from hpc_nst.models.alexnet import AudioAlexNet
from hpc_nst.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from hpc_nst.train.cache import build_cache
from hpc_nst.train.evaluate import metrics, predict_logits
from hpc_nst.train.sources import data_hash, load_examples
from hpc_nst.train.trainer import TrainConfig, load_state, report_path, resume_path, train

STFT = STFTConfig()


def _run(manifest: Path, out: Path, cfg: TrainConfig, **kw):
    examples = load_examples(manifest)
    cache = build_cache(examples, out.parent / "cache", STFT)
    labels = [e.label for e in examples]
    splits = [e.split for e in examples]
    meta = train(labels, splits, cache, out, cfg, STFT, data_hash(examples, manifest.parent),
                 torch.device("cpu"), **kw)
    return meta, cache, labels, splits


@pytest.fixture(scope="module")
def trained(tiny_gm: Path, tmp_path_factory: pytest.TempPathFactory):
    """Five tiny epochs (3 steps each) at width 4."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("run") / "clf.pt"
    cfg = TrainConfig(epochs=5, width=4, batch_size=8)
    meta, cache, labels, splits = _run(tiny_gm, out, cfg)
    return out, meta, cache, labels, splits


def test_loss_goes_down(trained) -> None:
    _, meta, *_ = trained
    losses = [row["train_loss"] for row in meta["history"]]
    assert len(losses) == 5
    assert losses[-1] < losses[0] - 0.1, losses
    assert all(np.isfinite(losses))


def test_checkpoint_round_trip(trained) -> None:
    out, meta, cache, labels, splits = trained
    model, saved = load_checkpoint(out, STFT)
    assert saved["classes"] == ["Acoustic Grand Piano", "Violin", "Flute"]
    assert saved["width"] == 4 and model.width == 4 and model.n_classes == 3
    assert saved["data_hash"] == meta["data_hash"] and saved["package_version"]
    assert 0.0 <= saved["heldout_top1"] <= saved["heldout_top5"] <= 1.0
    # Same logits as the best weights kept in the resume state.
    best = AudioAlexNet(3, 4, STFT.n_bins)
    best.load_state_dict(load_state(out)["best_model"])
    x = torch.from_numpy(np.asarray(cache.specs[:4], dtype=np.float32))[:, None]
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), best.eval()(x), rtol=0, atol=0)
    # The held-out accuracy stored in the checkpoint is reproduced from the file.
    test_idx = np.flatnonzero(np.array(splits) == "test")
    targets = np.array([saved["classes"].index(lab) for lab in labels])
    again = metrics(predict_logits(model, cache, test_idx, torch.device("cpu")),
                    targets[test_idx])
    assert again["top1"] == pytest.approx(saved["heldout_top1"])
    assert report_path(out).is_file()
    # The input normalisation was set from the training data.
    assert float(model.input_std) > 0 and float(model.input_mean) > 0


def test_checkpoint_rejects_other_stft(trained) -> None:
    out, *_ = trained
    with pytest.raises(CheckpointError, match="hop_length=160"):
        load_checkpoint(out, dataclasses.replace(STFT, hop_length=128))


def test_resume_continues_exactly(tiny_gm: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=2, width=4, batch_size=8)
    straight, *_ = _run(tiny_gm, tmp_path / "a" / "clf.pt", dataclasses.replace(cfg))
    first, *_ = _run(tiny_gm, tmp_path / "b" / "clf.pt", dataclasses.replace(cfg), stop_after=1)
    assert "heldout_top1" not in first  # stopped early: not finished
    state = load_state(tmp_path / "b" / "clf.pt")
    assert state["epoch"] == 1 and len(state["history"]) == 1
    msgs: list[str] = []
    resumed, *_ = _run(tiny_gm, tmp_path / "b" / "clf.pt", dataclasses.replace(cfg),
                       resume=tmp_path / "b" / "clf.pt", progress=msgs.append)
    assert any("resuming after epoch 1" in m for m in msgs)
    assert not any(m.startswith("epoch 1/") for m in msgs)
    assert [row["epoch"] for row in resumed["history"]] == [1, 2]
    a = load_state(tmp_path / "a" / "clf.pt")["model"]
    b = load_state(tmp_path / "b" / "clf.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    assert resumed["heldout_top1"] == straight["heldout_top1"]


def test_cli_train_and_resume(tiny_gm: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "clf.pt"
    common = [str(tiny_gm), "-o", str(out), "--width", "4", "--batch-size", "16",
              "--cache-dir", str(tmp_path / "cache")]
    assert main(["train", *common, "--epochs", "1"]) == 0
    err = capsys.readouterr().err
    assert "3 classes" in err and "epoch 1/1" in err and "held-out (test" in err
    assert out.is_file() and resume_path(out).is_file()
    assert main(["train", *common[:3], "--width", "8", *common[5:], "--epochs", "2",
                 "--resume", str(out)]) == 2  # it trained at the run's width without a word
    assert "--width 8, but the run of" in capsys.readouterr().err
    assert main(["train", *common, "--epochs", "2", "--resume", str(out)]) == 0
    err = capsys.readouterr().err
    assert "(reused)" in err and "resuming after epoch 1" in err
    assert "epoch 2/2" in err and "epoch 1/2" not in err
    meta = load_checkpoint(out)[1]
    assert meta["epochs_trained"] == 2
    assert meta["command"].startswith("hpc-nst train ")
    # resumed without --width/--batch-size: the command recorded is the run's, not defaults
    # (it said --width 16 --batch-size 32)
    assert main(["train", *common[:3], *common[7:], "--epochs", "3", "--resume",
                 str(out)]) == 0
    capsys.readouterr()
    command = load_checkpoint(out)[1]["command"]
    assert "--width 4 " in command and "--batch-size 16 " in command, command
    # the same command again without --resume started over and replaced the run (and an
    # interrupted one's resume state): refused now, before any work
    before = out.read_bytes()
    assert main(["train", *common, "--epochs", "1"]) == 2
    assert f"-o {out}: a training run is there" in capsys.readouterr().err
    assert out.read_bytes() == before
    other = tmp_path / "other.pt"
    assert main(["train", *common[:1], "-o", str(other), *common[3:], "--epochs", "1"]) == 0
    # --resume of another run does not let a new checkpoint replace this one
    assert main(["train", *common, "--epochs", "3", "--resume", str(other)]) == 2
    assert f"-o {out}: a training run is there" in capsys.readouterr().err
    # fine-tuning into a run's place: --overwrite is the way (not --resume)
    assert main(["train", *common[:3], *common[5:], "--epochs", "1", "--init-from",
                 str(other)]) == 2
    assert f"start again with --overwrite (fine-tuning from {other}" in \
        capsys.readouterr().err
    assert main(["train", *common, "--epochs", "1", "--overwrite"]) == 0
    assert load_checkpoint(out)[1]["epochs_trained"] == 1
    # only the resume state left (the checkpoint moved away): --resume of the name finds it
    out.rename(tmp_path / "moved.pt")
    assert main(["train", *common, "--epochs", "2", "--resume", str(out)]) == 0
    assert "resuming after epoch 1" in capsys.readouterr().err
    capsys.readouterr()
    for bad, says in (([str(tiny_gm), "-o", str(tmp_path)], "a folder; give the checkpoint's"),
                      ([str(tiny_gm), "-o", str(out / "x.pt")], "is a file, not a folder")):
        assert main(["train", *bad, "--epochs", "1"]) == 2
        assert says in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # argparse's own refusal
        main(["train", *common, "--seed", "-1"])
    assert exc.value.code == 2 and "--seed: '-1': give a whole number >= 0" in \
        capsys.readouterr().err


def test_cli_resume_without_state_is_clear(tiny_gm: Path, tmp_path: Path, capsys) -> None:
    code = main(["train", str(tiny_gm), "-o", str(tmp_path / "x.pt"), "--width", "4",
                 "--cache-dir", str(tmp_path / "cache"), "--resume", str(tmp_path / "nope.pt")])
    assert code == 2
    assert "no resume state found" in capsys.readouterr().err


def test_sbatch_script_runs_and_resumes(tiny_gm: Path, tmp_path: Path) -> None:
    """slurm/train.sbatch runs outside Slurm too; a second submission resumes."""
    import os
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "slurm" / "train.sbatch"
    env = {**os.environ, "HPC_NST_PYTHON": sys.executable, "HPC_NST_DEVICE": "cpu",
           "SLURM_CPUS_PER_TASK": "1", "HPC_NST_CACHE_DIR": str(tmp_path / "cache")}
    out = tmp_path / "clf.pt"
    args = ["bash", str(script), str(tiny_gm), str(out), "--width", "4"]
    first = subprocess.run([*args, "--epochs", "1"], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert out.is_file() and "resuming" not in first.stdout
    second = subprocess.run([*args, "--epochs", "2"], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert "resuming from" in second.stdout and "epoch 2/2" in second.stderr
    usage = subprocess.run(["bash", str(script)], env=env, capture_output=True, text=True)
    assert usage.returncode == 2 and "usage:" in usage.stderr


def test_cli_finetune_and_evaluate(trained, tiny_gm: Path, tmp_path: Path, capsys) -> None:
    """--init-from starts from a checkpoint's weights; --evaluate scores it on the test split."""
    ckpt, meta = trained[0], trained[1]
    cache_dir = ["--cache-dir", str(tmp_path / "cache")]
    assert main(["train", str(tiny_gm), "--evaluate", str(ckpt), *cache_dir]) == 0
    out = capsys.readouterr().out
    assert "(test, 6 clips): top-1" in out
    evaluated = json_load(ckpt.with_name(ckpt.stem + ".eval.json"))
    assert evaluated["n"] == 6 and evaluated["top1"] == pytest.approx(meta["heldout_top1"])
    # another split has its own file (it replaced the test result); a missing checkpoint or
    # an unknown split is said before the data is read, the path once
    assert main(["train", str(tiny_gm), "--evaluate", str(ckpt), "--split", "val",
                 *cache_dir]) == 0
    assert json_load(ckpt.with_name(ckpt.stem + ".eval.json")) == evaluated
    assert json_load(ckpt.with_name(ckpt.stem + ".eval-val.json"))["split"] == "val"
    capsys.readouterr()
    missing = tmp_path / "nosuch.pt"
    assert main(["train", str(tmp_path / "no-data"), "--evaluate", str(missing)]) == 2
    assert capsys.readouterr().err.count(str(missing)) == 1
    with pytest.raises(SystemExit):
        main(["train", str(tiny_gm), "--evaluate", str(ckpt), "--split", "bogus"])

    tuned = tmp_path / "tuned.pt"
    assert main(["train", str(tiny_gm), "-o", str(tuned), "--init-from", str(ckpt),
                 "--epochs", "1", "--lr", "1e-4", "--batch-size", "16", *cache_dir]) == 0
    err = capsys.readouterr().err
    assert f"starting from the weights of {ckpt}" in err and "width 4" in err
    tuned_meta = load_checkpoint(tuned)[1]
    assert "--init-from" in tuned_meta["command"] and tuned_meta["width"] == 4
    # three Adam steps at lr 1e-4 move a weight by about 3e-4: the start was the checkpoint
    start, after = load_checkpoint(ckpt)[0], load_checkpoint(tuned)[0]
    for name, w in start.state_dict().items():
        assert (after.state_dict()[name] - w).abs().max() < 2e-3, name

    other = tmp_path / "other.pt"
    save_checkpoint(AudioAlexNet(2, 4, 257), other, STFT, {"classes": ["x", "y"]})
    assert main(["train", str(tiny_gm), "-o", str(tmp_path / "t2.pt"), "--init-from", str(other),
                 *cache_dir]) == 2
    assert "classes differ" in capsys.readouterr().err
    assert main(["train", str(tiny_gm), "--evaluate", str(other), *cache_dir]) == 2
    assert "labels the checkpoint does not know" in capsys.readouterr().err


def json_load(path: Path) -> dict:
    import json

    return json.loads(path.read_text())


def test_init_from_reorders_the_head_to_the_datas_classes(tmp_path: Path) -> None:
    from hpc_nst.train.trainer import TrainError, _start_weights

    torch.manual_seed(0)
    net = AudioAlexNet(3, 4, 257).eval()
    save_checkpoint(net, tmp_path / "c.pt", STFT, {"classes": ["a", "b", "c"]})
    weights = _start_weights(tmp_path / "c.pt", ["c", "a", "b"], 4, STFT)
    other = AudioAlexNet(3, 4, 257).eval()
    other.load_state_dict(weights)
    x = torch.rand(2, 1, 257, 20)
    with torch.no_grad():
        torch.testing.assert_close(other(x), net(x)[:, [2, 0, 1]])
    with pytest.raises(TrainError, match="classes differ"):
        _start_weights(tmp_path / "c.pt", ["a", "b", "d"], 4, STFT)
    with pytest.raises(TrainError, match="width 4, but training width 8"):
        _start_weights(tmp_path / "c.pt", ["a", "b", "c"], 8, STFT)


def test_a_diverging_training_stops_with_an_error_and_a_bad_rate_is_refused(
        tiny_gm: Path, tmp_path: Path, capsys) -> None:
    """`--lr 1e6` went to NaN and its epoch was saved as the best (a NaN network predicts one
    class); `--lr nan` was a torch traceback."""
    cache_dir = ["--cache-dir", str(tmp_path / "cache")]
    out = tmp_path / "nan.pt"
    assert main(["train", str(tiny_gm), "-o", str(out), "--epochs", "1", "--lr", "1e6",
                 "--batch-size", "16", "--width", "4", *cache_dir]) == 2
    err = capsys.readouterr().err
    assert "the training diverged in epoch 1" in err and "no epoch was saved" in err
    assert not out.exists()
    for bad in ("nan", "inf"):
        assert main(["train", str(tiny_gm), "-o", str(out), "--lr", bad, *cache_dir]) == 2
        assert "--crop and --lr must be positive numbers" in capsys.readouterr().err
    # a crop longer than the clips (cut to 2.57 s when read) would be padding: refused first
    assert main(["train", str(tiny_gm), "-o", str(out), "--crop", "100", *cache_dir]) == 2
    assert "--crop 100: the training clips are cut to 2.57 s" in capsys.readouterr().err
