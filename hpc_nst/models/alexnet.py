"""AlexNet-style spectrogram classifier with 3x3 convolutions and 2x2 max-pooling.

Six weight layers: four 3x3 convolutions (``conv1`` .. ``conv4``, widths w, 2w, 4w, 4w, each
followed by ReLU; 2x2 max-pooling, rounding up, after conv1, conv2 and conv4) and a two-layer head
(``fc1``, ``fc2``). The convolutional stack is fully convolutional; before the head the time
axis is pooled globally (mean and max over valid frames), keeping the frequency axis, so any
input length works. Inputs are ``(B, 1, bins, frames)`` log-magnitude spectrograms.

Batches of different lengths are supported by ``lengths``: each item's activations beyond its
own length are zeroed after every layer, so an item's features equal those of running it alone.
"""

from __future__ import annotations

import threading

import torch
import torch.nn.functional as F
from torch import nn

from hpc_nst.config import CONV_LAYERS
from hpc_nst.models.first_conv import first_conv

LAYERS = (*CONV_LAYERS, "fc1", "fc2")
_POOL_AFTER = {"conv1", "conv2", "conv4"}


def frames_at(layer: str, lengths: torch.Tensor) -> torch.Tensor:
    """Valid frames at ``layer``'s resolution for input lengths ``lengths``."""
    for name in CONV_LAYERS[: CONV_LAYERS.index(layer)]:
        if name in _POOL_AFTER:
            lengths = (lengths + 1) // 2
    return lengths


def pooled_bins(n_bins: int) -> int:
    """Frequency bins left after the three 2x2 poolings."""
    for _ in range(len(_POOL_AFTER)):
        n_bins = (n_bins + 1) // 2
    return n_bins


class AudioAlexNet(nn.Module):
    """The feature extractor and instrument classifier of the paper."""

    def __init__(self, n_classes: int = 80, width: int = 32, n_bins: int = 257) -> None:
        super().__init__()
        self.n_classes, self.width, self.n_bins = n_classes, width, n_bins
        chans = (1, width, 2 * width, 4 * width, 4 * width)
        self.convs = nn.ModuleDict(
            {
                name: nn.Conv2d(chans[i], chans[i + 1], kernel_size=3, padding=1)
                for i, name in enumerate(CONV_LAYERS)
            }
        )
        flat = 2 * chans[-1] * pooled_bins(n_bins)
        self.fc1 = nn.Linear(flat, 8 * width)
        self.fc2 = nn.Linear(8 * width, n_classes)
        self.dropout = nn.Dropout(0.3)
        # Input normalisation, set from the training data (identity for random networks).
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))

    @staticmethod
    def _mask(x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        if lengths is None:
            return x
        frames = torch.arange(x.shape[-1], device=x.device)
        keep = frames[None, :] < lengths[:, None]
        return x * keep[:, None, None, :].to(x.dtype)

    def features(
        self,
        x: torch.Tensor,
        layers: tuple[str, ...] | list[str] | set[str],
        lengths: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Activations (after ReLU) at the named conv layers of ``x`` ``(B, 1, F, T)``.

        ``lengths`` (frames per item) marks padded frames; returned activations are zero there.
        Computation stops at the deepest requested layer.
        """
        unknown = set(layers) - set(CONV_LAYERS)
        if unknown:
            raise KeyError(f"unknown feature layer(s) {sorted(unknown)}; known: {CONV_LAYERS}")
        if lengths is not None and bool((lengths == x.shape[-1]).all()):
            lengths = None
        deepest = max(CONV_LAYERS.index(name) for name in layers)
        out: dict[str, torch.Tensor] = {}
        h = self._mask((x - self.input_mean) / self.input_std, lengths)
        # channels-last: 2-10x faster max-pooling and faster small-channel convs on the CPU
        h = h.contiguous(memory_format=torch.channels_last)
        for name in CONV_LAYERS[: deepest + 1]:
            conv = self.convs[name]
            h = first_conv(conv, h) if name == CONV_LAYERS[0] else conv(h)
            h = self._mask(F.relu(h, inplace=True), lengths)
            if name in layers:
                out[name] = h
            if name in _POOL_AFTER:
                h = F.max_pool2d(h, 2, ceil_mode=True)
                lengths = None if lengths is None else (lengths + 1) // 2
        return out

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits ``(B, n_classes)``; time pooled over each item's valid frames."""
        h = self.features(x, ("conv4",), lengths)["conv4"]
        h = F.max_pool2d(h, 2, ceil_mode=True)
        if lengths is None:
            mean, peak = h.mean(dim=-1), h.amax(dim=-1)
        else:
            valid = ((lengths + 7) // 8).to(h.dtype)
            mean = h.sum(dim=-1) / valid[:, None, None]
            peak = h.amax(dim=-1)  # padded frames are 0 and activations >= 0
        h = torch.cat([mean, peak], dim=1).flatten(1)
        h = self.dropout(F.relu(self.fc1(h)))
        return self.fc2(self.dropout(h))


#: Held while a seeded network draws its weights from torch's global generator: two threads
#: (two tasks on one worker) seeding it at once would interleave their draws.
GLOBAL_RNG_LOCK = threading.Lock()


def random_model(width: int = 32, seed: int = 0, n_bins: int = 257) -> AudioAlexNet:
    """A seeded random-weight network (the ``model=random`` option); thread-safe."""
    with GLOBAL_RNG_LOCK:
        gen_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)
            model = AudioAlexNet(n_classes=80, width=width, n_bins=n_bins)
        finally:
            torch.random.set_rng_state(gen_state)
    return model.eval()
