"""The four-term objective for a batch of pairs, with the targets computed once."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hpc_nst.config import LossConfig
from hpc_nst.losses import style_transfer as L
from hpc_nst.models.alexnet import AudioAlexNet, frames_at

TERMS = ("content", "style", "envelope", "timbre")


@dataclass
class Objective:
    """Targets of B pairs; ``__call__`` gives the weighted total and each term, per item."""

    model: AudioAlexNet
    loss: LossConfig
    lengths: torch.Tensor  # content frames per item
    content_targets: dict[str, torch.Tensor]
    style_grams: dict[str, torch.Tensor]
    envelope_target: torch.Tensor  # (B, T) style envelope resampled to the content length
    timbre_target: torch.Tensor  # (B, F) spectrum or (B, K) cepstrum (loss.timbre_envelope)

    @classmethod
    def build(
        cls,
        model: AudioAlexNet,
        loss: LossConfig,
        content: torch.Tensor,
        content_lengths: torch.Tensor,
        style: torch.Tensor,
        style_lengths: torch.Tensor,
    ) -> Objective:
        """Targets from padded log-magnitudes ``content`` ``(B, F, Tc)`` and ``style``."""
        with torch.no_grad():
            cfeat = model.features(content[:, None], loss.content_layers, content_lengths)
            sfeat = model.features(style[:, None], loss.style_layers, style_lengths)
            grams = {
                name: L.gram(sfeat[name], frames_at(name, style_lengths))
                for name in loss.style_layers
            }
            senv = L.temporal_envelope(style)
            frames = content.shape[-1]
            env = torch.zeros(content.shape[0], frames, dtype=content.dtype, device=content.device)
            pairs = zip(style_lengths.tolist(), content_lengths.tolist())
            for i, (s_len, c_len) in enumerate(pairs):
                env[i, :c_len] = L.resample_envelope(senv[i], s_len, c_len)
            timbre = L.timbre_target(
                style, style_lengths, loss.timbre_envelope, loss.timbre_coefficients
            )
        return cls(model, loss, content_lengths, cfeat, grams, env, timbre)

    def select(self, start: int, stop: int) -> Objective:
        """The objective of items ``start:stop`` only (views of the targets, no copies)."""
        return Objective(
            self.model, self.loss, self.lengths[start:stop],
            {k: v[start:stop] for k, v in self.content_targets.items()},
            {k: v[start:stop] for k, v in self.style_grams.items()},
            self.envelope_target[start:stop], self.timbre_target[start:stop],
        )

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total ``(B,)`` and the unweighted terms ``{name: (B,)}`` for ``x``."""
        cfg = self.loss
        layers = set(cfg.content_layers) | set(cfg.style_layers)
        feats = self.model.features(x[:, None], layers, self.lengths)
        content = sum(
            L.content_loss(feats[n], self.content_targets[n], frames_at(n, self.lengths))
            for n in cfg.content_layers
        ) / len(cfg.content_layers)
        weight_sum = sum(cfg.style_layer_weights) or 1.0
        style = (
            sum(
                w * L.style_loss(L.gram(feats[n], frames_at(n, self.lengths)), self.style_grams[n])
                for n, w in zip(cfg.style_layers, cfg.style_layer_weights)
            )
            / weight_sum
        )
        envelope = L.envelope_loss(x, self.envelope_target, self.lengths)
        timbre = L.timbre_loss(
            x, self.timbre_target, self.lengths, cfg.timbre_envelope, cfg.timbre_coefficients
        )
        total = (
            cfg.content_weight * content
            + cfg.style_weight * style
            + cfg.envelope_weight * envelope
            + cfg.timbre_weight * timbre
        )
        terms = {"content": content, "style": style, "envelope": envelope, "timbre": timbre}
        return total, terms
