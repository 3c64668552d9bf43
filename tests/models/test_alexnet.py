import pytest
import torch

from hpc_nst.config import STFTConfig, load_job
from hpc_nst.models.alexnet import CONV_LAYERS, AudioAlexNet, random_model
from hpc_nst.models.checkpoint import (
    CheckpointError,
    load_checkpoint,
    resolve_model,
    save_checkpoint,
)


def _weight_layers(model: AudioAlexNet) -> list[str]:
    kinds = (torch.nn.Conv2d, torch.nn.Linear)
    return [n for n, m in model.named_modules() if isinstance(m, kinds)]


def test_six_weight_layers_with_3x3_convs():
    model = AudioAlexNet(n_classes=80, width=8)
    assert len(_weight_layers(model)) == 6
    assert all(c.kernel_size == (3, 3) for c in model.convs.values())


@pytest.mark.parametrize("frames", [1, 7, 100, 257, 1001])
def test_any_length_works(frames):
    model = random_model(width=4)
    x = torch.rand(2, 1, 257, frames)
    assert model(x).shape == (2, 80)
    feats = model.features(x, CONV_LAYERS)
    assert feats["conv1"].shape == (2, 4, 257, frames)
    assert feats["conv4"].shape[1] == 16


def test_masked_batch_equals_items_alone():
    model = random_model(width=4)
    a, b = torch.rand(1, 1, 257, 61), torch.rand(1, 1, 257, 40)
    batch = torch.zeros(2, 1, 257, 61)
    batch[0], batch[1, :, :, :40] = a[0], b[0]
    batch[1, :, :, 40:] = 5.0  # garbage in the padding must not leak
    lengths = torch.tensor([61, 40])
    got = model.features(batch, CONV_LAYERS, lengths)
    alone = model.features(b, CONV_LAYERS)
    for name in CONV_LAYERS:
        t = alone[name].shape[-1]
        assert torch.allclose(got[name][1, ..., :t], alone[name][0], atol=1e-5)
        assert not got[name][1, ..., t:].any()
    assert torch.allclose(model(batch, lengths)[1], model(b)[0], atol=1e-5)


def test_random_model_is_seeded():
    a, b, c = random_model(seed=1), random_model(seed=1), random_model(seed=2)
    assert torch.equal(a.convs["conv1"].weight, b.convs["conv1"].weight)
    assert not torch.equal(a.convs["conv1"].weight, c.convs["conv1"].weight)


def test_checkpoint_roundtrip_and_mismatches(tmp_path):
    model = random_model(width=4, seed=5)
    path = tmp_path / "m.pt"
    save_checkpoint(model, path, STFTConfig(), {"classes": ["x"] * 80})
    loaded, meta = load_checkpoint(path, STFTConfig())
    x = torch.rand(1, 1, 257, 30)
    assert torch.allclose(loaded(x), model(x))
    assert meta["classes"][0] == "x" and "package_version" in meta
    with pytest.raises(CheckpointError, match="different STFT settings: n_fft=512"):
        load_checkpoint(path, STFTConfig(n_fft=1024))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a checkpoint: not a PyTorch zip"):
        load_checkpoint(tmp_path / "junk.pt")
    raw = path.read_bytes()  # cut short in a copy: said so, not "(105)"
    (tmp_path / "cut.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="cut.pt: not a checkpoint: .* or one cut short"):
        load_checkpoint(tmp_path / "cut.pt")
    torch.save({"format": "hpc_nst.checkpoint/1", "x": Exception("any object")},
               tmp_path / "obj.pt")
    with pytest.raises(CheckpointError, match="holds Python objects beyond tensors"):
        load_checkpoint(tmp_path / "obj.pt")
    damaged = bytearray(raw)  # a member's bytes changed, the zip directory intact
    at = raw.index(b"data.pkl") + 40
    damaged[at: at + 16] = bytes(16)
    (tmp_path / "damaged.pt").write_bytes(bytes(damaged))
    with pytest.raises(CheckpointError, match="damaged.pt: (damaged checkpoint|not an hpc_nst)"):
        load_checkpoint(tmp_path / "damaged.pt")
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_resolve_model_by_path_and_random(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(random_model(width=4, seed=9), path, STFTConfig(), {})
    by_path = resolve_model(load_job(overrides={"model": str(path)}))
    assert by_path.width == 4
    assert not any(p.requires_grad for p in by_path.parameters())
    rnd = resolve_model(load_job(overrides={"model": "random", "width": "8"}))
    assert rnd.width == 8
