"""The rules a job's values must meet (:func:`validate`), checked whenever a job is built.

Types are checked as the job is built (:mod:`hpc_nst.config`); here the values: ranges, the
choices of each option, the layers and terms named, and each registered term's own rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from hpc_nst.errors import ConfigError, RegistryError

if TYPE_CHECKING:
    from hpc_nst.config import JobConfig

#: The feature network's convolutional layers (:mod:`hpc_nst.models.alexnet`).
CONV_LAYERS = ("conv1", "conv2", "conv3", "conv4")
OPTIMIZERS = ("adam", "lbfgs")
INITS = ("noise", "content")
PRECISIONS = ("fp32", "bf16")
TIMBRE_ENVELOPES = ("spectrum", "cepstral")


def validate(cfg: JobConfig) -> JobConfig:
    """``cfg`` if every value is allowed, else a ConfigError (RegistryError for an unknown
    term parameter) naming the key, what is wrong and what it may be."""
    def need(cond: bool, key: str, msg: str) -> None:
        if not cond:
            raise ConfigError(f"{key}: {msg}")

    from hpc_nst.registry import METHODS, TERMS

    rate = getattr(METHODS.get(cfg.method, "method"), "sample_rate", None)
    need(cfg.stft.sample_rate > 0, "stft.sample_rate", "must be > 0 (Hz)")
    need(rate is None or cfg.stft.sample_rate == rate, "stft.sample_rate",
         f"method {cfg.method} works at {rate} Hz only, not {cfg.stft.sample_rate}; leave "
         f"it at {rate} (inputs of any rate are resampled to it)")
    need(cfg.stft.win_length >= 2, "stft.win_length", "must be >= 2 samples")
    need(cfg.optim.noise_std >= 0, "optim.noise_std", "must be >= 0")
    need(cfg.model.name in ("random", "classifier", "default") or Path(cfg.model.name).is_file(),
         "model.name", f"{cfg.model.name!r} is neither 'random', 'classifier' nor an existing "
         "checkpoint file; give a path that exists on this machine (and on the workers)")
    for key in ("content_layers", "style_layers"):
        layers = getattr(cfg.loss, key)
        need(len(layers) > 0, f"loss.{key}", f"must name at least one of {CONV_LAYERS}")
        bad = [n for n in layers if n not in CONV_LAYERS]
        need(not bad, f"loss.{key}", f"unknown layer(s) {bad}; choose from {CONV_LAYERS}")
        need(len(set(layers)) == len(layers), f"loss.{key}", "lists a layer twice")
    need(all(w >= 0 for w in cfg.loss.style_layer_weights), "loss.style_layer_weights",
         "must be >= 0")
    for name, weight in cfg.loss.term_weights.items():
        term = TERMS.get(name, f"loss.term_weights.{name}")
        need(term.weight_key() == f"loss.term_weights.{name}", f"loss.term_weights.{name}",
             f"this term's weight is {term.weight_key()}")
        need(weight >= 0, f"loss.term_weights.{name}", "must be >= 0")
    for name, params in cfg.loss.term_params.items():
        term = TERMS.get(name, f"loss.term_params.{name}")
        for param in params:
            if param not in term.params:
                raise RegistryError(f"loss.term_params.{name}.{param}: {name!r} has no "
                                    f"parameter {param!r} (its parameters: "
                                    f"{', '.join(sorted(term.params)) or 'none'})")
    for name, weight in cfg.loss.term_weights.items():
        term = TERMS.get(name)
        term.validate(cfg.loss)
        if weight:  # the layers it asks for exist (a plugin's conv9: refused now, not per pair)
            asked = set().union(*term.layers(cfg.loss))
            bad = sorted(asked - set(CONV_LAYERS))
            need(not bad, f"loss.term_weights.{name}", f"term {name!r} asks for unknown "
                 f"feature layer(s) {bad} in layers(); the network has {CONV_LAYERS}")
    need(cfg.optim.optimizer in OPTIMIZERS, "optim.optimizer", f"must be one of {OPTIMIZERS}")
    need(cfg.optim.init in INITS, "optim.init", f"must be one of {INITS}")
    need(cfg.optim.precision in PRECISIONS, "optim.precision", f"must be one of {PRECISIONS}")
    need(cfg.optim.iterations >= 0, "optim.iterations", "must be >= 0")
    need(cfg.optim.learning_rate > 0, "optim.learning_rate", "must be > 0")
    need(cfg.optim.record_every >= 1, "optim.record_every", "must be >= 1")
    need(cfg.optim.seed >= 0, "optim.seed", "must be >= 0")
    need(cfg.model.seed >= 0, "model.seed", "must be >= 0")
    need(cfg.optim.window_s == 0 or cfg.optim.window_s >= 1.0, "optim.window_s",
         "must be 0 (whole inputs) or at least 1 second")
    need(0 <= cfg.optim.window_overlap_s and (cfg.optim.window_s == 0 or
                                              2 * cfg.optim.window_overlap_s < cfg.optim.window_s),
         "optim.window_overlap_s", "must be >= 0 and under half of optim.window_s")
    need(cfg.griffin_lim.iterations >= 1, "griffin_lim.iterations", "must be >= 1")
    need(0 <= cfg.griffin_lim.momentum < 1, "griffin_lim.momentum", "must be in [0, 1)")
    need(cfg.model.width >= 1, "model.width", "must be >= 1")
    need(cfg.stft.win_length <= cfg.stft.n_fft, "stft.win_length", "must be <= stft.n_fft")
    need(cfg.stft.hop_length >= 1, "stft.hop_length", "must be >= 1")
    need(
        len(cfg.loss.style_layers) == len(cfg.loss.style_layer_weights),
        "loss.style_layer_weights",
        "must have one weight per entry of loss.style_layers",
    )
    need(
        cfg.loss.timbre_envelope in TIMBRE_ENVELOPES,
        "loss.timbre_envelope",
        f"must be one of {TIMBRE_ENVELOPES}, got {cfg.loss.timbre_envelope!r}",
    )
    need(
        1 <= cfg.loss.timbre_coefficients < cfg.stft.n_bins,
        "loss.timbre_coefficients",
        f"must be in [1, {cfg.stft.n_bins - 1}]",
    )
    for key in ("content_weight", "style_weight", "envelope_weight", "timbre_weight"):
        need(getattr(cfg.loss, key) >= 0, f"loss.{key}", "must be >= 0")
    return cfg
