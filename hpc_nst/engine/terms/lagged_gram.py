"""Time-lagged Gram term: the style's feature co-occurrences across short time lags.

After Berger & Memisevic (2017), "Incorporating long-range consistency in CNN-based texture
generation": the plain Gram matrix ``G = F^T F / N`` of a layer forgets *when* features occur;
the lagged Gram ``G_tau = F_t^T F_{t+tau} / N_tau`` pairs each frame's features with those
``tau`` frames later, so attacks followed by decays (a pluck), sustained partials (a bowed
string) and tremolo give different matrices even when the static spectra agree.

Per item and per layer of ``loss.style_layers`` (weighted by ``loss.style_layer_weights``),
for lags ``1, 2, 4, ..., max_lag`` spectrogram frames (10 ms each at the paper's hop), each lag
converted to the layer's own frame rate (halved after each time pooling; lags that collapse to
the same layer lag are used once, and never below one layer frame). The term is the mean over
lags and layers of the relative squared Frobenius distance
``||G_tau(X) - G_tau(S)||^2 / ||G_tau(S)||^2``, like the style term's. Lagged Grams are
normalised by each item's own number of valid (frame, frame + tau) pairs, so padding is neutral.

Parameters (``loss.term_params.lagged_gram.<name>``): ``max_lag`` (default 8 frames = 80 ms;
a power of two in [1, 256]) and ``deepest`` (default 4: use the style layers up to
``conv<deepest>``). Weight: ``loss.term_weights.lagged_gram`` (short: ``lagged_gram_weight``;
off by default).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from hpc_nst.config import CONV_LAYERS, LossConfig
from hpc_nst.engine.terms.base import Current, TargetInputs, Term, register_term
from hpc_nst.errors import ConfigError
from hpc_nst.models.alexnet import frames_at

EPS = 1e-12


def layer_lags(layer: str, max_lag: int) -> tuple[int, ...]:
    """Lags in ``layer`` frames for input lags ``1, 2, 4, ..., max_lag`` (deduplicated, >= 1)."""
    one = torch.tensor([1 << 20])
    factor = (1 << 20) // int(frames_at(layer, one)[0])  # time downsampling before the layer
    lags, lag = set(), 1
    while lag <= max_lag:
        lags.add(max(1, lag // factor))
        lag *= 2
    return tuple(sorted(lags))


def lagged_gram(features: torch.Tensor, lengths: torch.Tensor, lag: int) -> torch.Tensor:
    """``(B, C, C)``: sum over (frequency, t) of ``f[:, t] f[:, t + lag]^T`` over valid pairs,
    divided by their number. ``features`` ``(B, C, F, T)`` are zero beyond each length."""
    b, c, f, t = features.shape
    if lag >= t:
        return features.new_zeros(b, c, c)
    pairs = ((lengths.clamp(max=t) - lag).clamp_min(1) * f).to(features.dtype)
    early = features[..., : t - lag].permute(0, 2, 3, 1).reshape(b, f * (t - lag), c)
    late = features[..., lag:].permute(0, 2, 3, 1).reshape(b, f * (t - lag), c)
    return torch.bmm(early.transpose(1, 2), late) / pairs[:, None, None]


@register_term
class LaggedGramTerm(Term):
    name = "lagged_gram"
    params = {"max_lag": 8.0, "deepest": 4.0}

    def validate(self, loss: LossConfig) -> None:
        lag = self.param(loss, "max_lag")
        if lag != int(lag) or not 1 <= lag <= 256 or int(lag) & (int(lag) - 1):
            raise ConfigError("loss.term_params.lagged_gram.max_lag: must be a power of two "
                              f"in [1, 256] (frames), got {lag}")
        deepest = self.param(loss, "deepest")
        if deepest != int(deepest) or not 1 <= deepest <= len(CONV_LAYERS):
            raise ConfigError("loss.term_params.lagged_gram.deepest: must be an integer in "
                              f"[1, {len(CONV_LAYERS)}], got {deepest}")
        if not self._layers(loss):
            raise ConfigError("loss.term_params.lagged_gram.deepest: no style layer is that "
                              "shallow")

    def _layers(self, loss: LossConfig) -> list[tuple[str, float]]:
        deepest = int(self.param(loss, "deepest"))
        return [(n, w) for n, w in zip(loss.style_layers, loss.style_layer_weights)
                if CONV_LAYERS.index(n) < deepest]

    def layers(self, loss: LossConfig) -> tuple[set[str], set[str], set[str]]:
        names = {n for n, _ in self._layers(loss)}
        return names, set(), names

    def _grams(self, features: Mapping[str, torch.Tensor], lengths: torch.Tensor,
               loss: LossConfig) -> dict[str, torch.Tensor]:
        max_lag = int(self.param(loss, "max_lag"))
        out = {}
        for n, _ in self._layers(loss):
            for lag in layer_lags(n, max_lag):
                out[f"{n}@{lag}"] = lagged_gram(features[n], frames_at(n, lengths), lag)
        return out

    def targets(self, inputs: TargetInputs) -> dict[str, torch.Tensor]:
        return self._grams(inputs.style_features, inputs.style_lengths, inputs.loss)

    def value(self, current: Current, targets: Mapping[str, torch.Tensor]) -> torch.Tensor:
        loss = current.loss
        max_lag = int(self.param(loss, "max_lag"))
        layers = self._layers(loss)
        weight_sum = sum(w for _, w in layers) or 1.0
        total = current.x.new_zeros(current.x.shape[0])
        for n, w in layers:
            lags = layer_lags(n, max_lag)
            frames = frames_at(n, current.lengths)
            per_layer = total.new_zeros(total.shape)
            for lag in lags:
                g_s = targets[f"{n}@{lag}"]
                g_x = lagged_gram(current.features[n], frames, lag)
                err = (g_x - g_s).pow(2).flatten(1).sum(1)
                per_layer = per_layer + err / (g_s.pow(2).flatten(1).sum(1) + EPS)
            total = total + w * per_layer / len(lags)
        return total / weight_sum
