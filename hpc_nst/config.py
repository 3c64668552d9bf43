"""Frozen, typed job configuration loaded from TOML presets under ``jobs/``.

A job preset is a TOML file with the sections below. Every key has a default equal to the
paper preset (``jobs/paper.toml``); unknown keys and wrong types are rejected with a
:class:`ConfigError` naming the key. Any key can be overridden with ``KEY=VALUE`` strings
(dotted for nested keys, e.g. ``loss.style_weight=2``); the short names in :data:`ALIASES`
(``iterations``, ``seed``, ``model`` ...) reach the nested keys directly.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpc_nst.config_validation import CONV_LAYERS, validate  # noqa: F401 (CONV_LAYERS re-exported)
from hpc_nst.errors import ConfigError, did_you_mean
from hpc_nst.registry import PLUGINS_ENV

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib



@dataclass(frozen=True)
class STFTConfig:
    """STFT settings of the paper: 16 kHz, 30 ms Hann window, 10 ms hop, 512-point FFT."""

    sample_rate: int = 16000
    win_length: int = 480
    hop_length: int = 160
    n_fft: int = 512

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1


@dataclass(frozen=True)
class ModelConfig:
    """Feature network: ``random`` (seeded random weights, the preset), ``classifier`` (the
    shipped instrument classifier; ``default`` is accepted as a synonym) or a checkpoint path."""

    name: str = "random"
    width: int = 16
    seed: int = 0


@dataclass(frozen=True)
class LossConfig:
    """Weights and layers of L = a*content + b*style + g*envelope + d*timbre (frequency)."""

    content_weight: float = 5.0
    style_weight: float = 100.0
    envelope_weight: float = 1.0
    timbre_weight: float = 1.0
    content_layers: tuple[str, ...] = ("conv2",)
    style_layers: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4")
    style_layer_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)
    timbre_envelope: str = "cepstral"  # "cepstral" (smoothed, in dB) or "spectrum" (per bin)
    timbre_coefficients: int = 12  # cepstral coefficients 1..N of "cepstral"
    #: Weights of the registered terms beyond the four above (``name -> weight``; 0 = off).
    term_weights: dict[str, float] = field(default_factory=dict, hash=False)
    #: Parameters of registered terms, ``term -> {param: value}`` (see each term's module).
    term_params: dict[str, dict[str, float]] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings; ``init`` is ``noise`` (the paper) or ``content``."""

    optimizer: str = "adam"
    iterations: int = 300
    learning_rate: float = 0.05
    init: str = "noise"
    noise_std: float = 0.1
    seed: int = 0
    record_every: int = 1
    window_s: float = 0.0  # > 0: content longer than this is optimised in overlapping windows
    window_overlap_s: float = 1.0  # cross-fade between windows (hpc_nst/engine/windows.py)
    precision: str = "fp32"  # "bf16": the loss and its gradient under bfloat16 autocast


@dataclass(frozen=True)
class GriffinLimConfig:
    """Griffin-Lim phase reconstruction; ``momentum`` > 0 is fast Griffin-Lim."""

    iterations: int = 100
    momentum: float = 0.99


@dataclass(frozen=True)
class JobConfig:
    """One job preset: the method and every parameter of a transfer."""

    method: str = "nst"
    stft: STFTConfig = field(default_factory=STFTConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    griffin_lim: GriffinLimConfig = field(default_factory=GriffinLimConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def record(self) -> dict[str, Any]:
        """What a store or a result records of this job: :meth:`to_dict` plus the method's
        ``method_revision`` (:data:`METHOD_REVISIONS`) where it is not 0."""
        data = self.to_dict()
        revision = METHOD_REVISIONS.get(self.method, 0)
        if revision:
            data["method_revision"] = revision
        return data

    def effective(self) -> dict[str, Any]:
        """:func:`effective_parameters` of this job (its :meth:`record`), computed once per
        (frozen) instance; treat as read-only."""
        cached = self.__dict__.get("_effective")
        if cached is None:
            cached = effective_parameters(self.record())
            object.__setattr__(self, "_effective", cached)  # not a field: eq/asdict skip it
        return cached

    def digest(self) -> str:
        """A stable hash of the parameters that shape results (:func:`effective_parameters`);
        computed once per instance."""
        cached = self.__dict__.get("_digest")
        if cached is None:
            blob = json.dumps(self.effective(), sort_keys=True, default=list)
            cached = hashlib.sha256(blob.encode()).hexdigest()[:16]
            object.__setattr__(self, "_digest", cached)
        return cached

    def with_seed(self, seed: int) -> JobConfig:
        """This job with ``optim.seed = seed``: cheap (no rebuild), for per-pair seeds."""
        new = dataclasses.replace(self, optim=dataclasses.replace(self.optim, seed=seed))
        eff = self.effective()
        object.__setattr__(new, "_effective", eff | {"optim": eff["optim"] | {"seed": seed}})
        return new


#: The sections of a job file, by name.
SECTIONS = {"stft": STFTConfig, "model": ModelConfig, "loss": LossConfig, "optim": OptimConfig,
            "griffin_lim": GriffinLimConfig}


#: Each method's revision, raised when the method's output changes for the same parameters (a
#: defect mended, a rule changed): it enters the job's digest, so a store made by an earlier
#: revision is refused, naming ``method_revision``, instead of being resumed into a dataset that
#: mixes the two. A method not listed is at revision 0, which leaves the digest as it was.
#: sampler 1 (and layered, which plays it): an extended note keeps its level trend through the
#: pieces (no swell at each seam), and a style note's voiced frames are the f0 track's own.
#: layered-post plays layered: raised with it, and also when its shipped weights are retrained
#: (2: the post-filter conditioned on the style's texture statistics too).
METHOD_REVISIONS: dict[str, int] = {"sampler": 1, "layered": 1, "layered-post": 2}

#: Keys added after stores existed, with the value that reproduces the results from before the
#: key: at that value a key is left out of the digest, so older stores still resume. A new key
#: goes here with its neutral value (and its default should be that value, or the preset
#: changes results, which a digest must then see).
NEUTRAL: dict[str, Any] = {
    "loss.term_weights": {},
    "loss.term_params": {},
    "optim.window_s": 0.0,
    "optim.window_overlap_s": 1.0,
    "optim.precision": "fp32",
    "method_revision": 0,
}


def effective_parameters(data: dict[str, Any]) -> dict[str, Any]:
    """A job's ``to_dict()`` (or a store's record of one) without keys that cannot change results.

    - keys of :data:`NEUTRAL` at their neutral value (e.g. no extra terms);
    - extra terms of weight 0, and the parameters of terms that are off;
    - under ``loss.timbre_envelope = "spectrum"`` (the per-bin term, the only one before the key
      existed) neither timbre key, so stores made before they were added still resume.
    """
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    loss = data.get("loss", {})
    weights = {k: v for k, v in dict(loss.get("term_weights", {})).items() if v != 0}
    loss["term_weights"] = weights
    loss["term_params"] = {k: v for k, v in dict(loss.get("term_params", {})).items()
                           if k in weights}
    if loss.get("timbre_envelope", "spectrum") == "spectrum":
        loss.pop("timbre_envelope", None)
        loss.pop("timbre_coefficients", None)
    for dotted, neutral in NEUTRAL.items():
        section, _, key = dotted.rpartition(".")
        node = data.get(section, {}) if section else data
        if key in node and node[key] == neutral:
            del node[key]
    return data


#: Short names accepted by ``--set`` and manifest overrides.
ALIASES: dict[str, str] = {
    "iterations": "optim.iterations",
    "optimizer": "optim.optimizer",
    "init": "optim.init",
    "seed": "optim.seed",
    "window_s": "optim.window_s",
    "learning_rate": "optim.learning_rate",
    "model": "model.name",
    "width": "model.width",
    "griffin_lim_iterations": "griffin_lim.iterations",
    "griffin_lim_momentum": "griffin_lim.momentum",
    "content_weight": "loss.content_weight",
    "style_weight": "loss.style_weight",
    "envelope_weight": "loss.envelope_weight",
    "timbre_weight": "loss.timbre_weight",
}


def _coerce(key: str, value: Any, typ: Any) -> Any:
    """Check (and for strings from the command line, parse) ``value`` against ``typ``."""
    origin = typing.get_origin(typ)
    if origin is dict:
        (_, inner) = typing.get_args(typ)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a table of name = value, got {value!r}")
        return {str(k): _coerce(f"{key}.{k}", v, inner) for k, v in sorted(value.items())}
    if origin is tuple:
        (inner, _) = typing.get_args(typ)
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return tuple(_coerce(key, v, inner) for v in value)
    if typ is bool:
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if typ is int:
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if typ is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {typ}")  # pragma: no cover


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    hints = _type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if key not in names:
            hint = did_you_mean(key, names)
            if not prefix and key in ALIASES:  # a --set short name at a job file's top level
                section, name = ALIASES[key].rsplit(".", 1)
                hint = (f" (in a job file it goes in its section: [{section}] {name} = ...; "
                        f"the short name is for --set)")
            elif not prefix and not hint:  # a short name misspelt (--set iteratons=5)
                hint = did_you_mean(key, ALIASES)
                nested = [f"{name}.{key}" for name, section in SECTIONS.items()
                          if key in {g.name for g in dataclasses.fields(section)}]
                if nested:  # a section's key without its section (--set precision=bf16)
                    hint = f" (did you mean {' or '.join(nested)}?)"
            if key.endswith("_weight") and prefix in ("", "loss.") and key[:-7]:
                from hpc_nst.registry import TERMS

                term = key[: -len("_weight")]  # a plugin term's weight, or a typo of one
                new = (f"a loss term's weight? in a job file it goes in [loss.term_weights] "
                       f"{term} = ..." if term in TERMS else
                       f"a loss term's weight? no term {term!r} is registered: a plugin's "
                       f"term needs {PLUGINS_ENV}=<its module> (docs/terms.md), and in a job "
                       f"file its weight goes in [loss.term_weights] {term} = ...")
                hint = f"{hint[:-1]} Or {new})" if hint.endswith(")") else f" ({new})"
            raise ConfigError(f"{full}: unknown key{hint} (known: {', '.join(sorted(names))})")
        typ = hints[key]
        if dataclasses.is_dataclass(typ):
            if not isinstance(value, dict):
                raise ConfigError(f"{full}: expected a table/section, got {value!r}")
            kwargs[key] = _build(typ, value, prefix=f"{full}.")
        else:
            kwargs[key] = _coerce(full, value, typ)
    return cls(**kwargs)


def _resolve_alias(key: str) -> str:
    """``ALIASES`` short names, and ``<term>_weight`` for any registered extra loss term."""
    if key in ALIASES:
        return ALIASES[key]
    if key.endswith("_weight") and "." not in key:
        from hpc_nst.registry import TERMS

        if key[: -len("_weight")] in TERMS:
            return f"loss.term_weights.{key[: -len('_weight')]}"
    return key


def _set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part!r} is not a section")
        node = child
    node[parts[-1]] = value


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, str]:
    """Turn ``["KEY=VALUE", ...]`` into a dict, rejecting malformed items."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{item!r}: overrides must look like KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def apply_overrides(cfg: JobConfig, overrides: dict[str, Any]) -> JobConfig:
    """Return ``cfg`` with dotted or short-name keys replaced, validated."""
    if not overrides:
        return cfg
    keys = {_resolve_alias(k) for k in overrides}
    if keys == {"optim.seed"}:  # a manifest's seed column: every row differs, keep it cheap
        (value,) = overrides.values()
        return validate(cfg.with_seed(_coerce("optim.seed", value, int)))
    tree = cfg.to_dict()
    for key, value in overrides.items():
        _set_dotted(tree, _resolve_alias(key), value)
    return validate(_build(JobConfig, tree))


#: The shipped presets (``jobs/*.toml`` of the checkout the package is installed from).
PRESETS = Path(__file__).resolve().parent.parent / "jobs"


def find_job(path: str | Path) -> Path:
    """The job file ``path``; where there is none, a shipped preset of that name (``eq``,
    ``eq.toml`` or ``jobs/eq.toml`` from any folder), else a ConfigError listing them."""
    path = Path(path)
    if path.is_file():
        return path
    if path.parent in (Path("."), Path("jobs")) and path.suffix in ("", ".toml"):
        preset = PRESETS / f"{path.stem}.toml"
        if preset.is_file():
            return preset
    names = sorted(p.stem for p in PRESETS.glob("*.toml"))
    raise ConfigError(f"{path}: job file not found" + (
        f"; the shipped presets are {', '.join(names)} (--job NAME, from any folder)"
        f"{did_you_mean(path.stem, names)}" if names else ""))


def load_job(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> JobConfig:
    """Load a TOML preset (or the defaults, which equal ``jobs/paper.toml``) and apply overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = find_job(path)
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    try:
        cfg = validate(_build(JobConfig, data))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}" if path else str(exc)) from None
    return apply_overrides(cfg, overrides or {})
