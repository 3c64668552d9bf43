from pathlib import Path

import pytest

from hpc_nst.config import ConfigError, apply_overrides, load_job, parse_overrides

ROOT = Path(__file__).resolve().parents[1]


def test_paper_preset_equals_defaults():
    assert load_job(ROOT / "jobs" / "paper.toml") == load_job()


def test_every_preset_in_jobs_loads():
    presets = sorted((ROOT / "jobs").glob("*.toml"))
    assert presets
    for path in presets:
        load_job(path)


def test_unknown_key_is_named(tmp_path):
    job = tmp_path / "bad.toml"
    job.write_text("[optim]\niterashuns = 3\n")
    with pytest.raises(ConfigError, match="optim.iterashuns: unknown key"):
        load_job(job)


def test_wrong_type_is_named(tmp_path):
    job = tmp_path / "bad.toml"
    job.write_text('[loss]\nstyle_weight = "lots"\n')
    with pytest.raises(ConfigError, match="loss.style_weight: expected a number"):
        load_job(job)


def test_invalid_value_is_named():
    with pytest.raises(ConfigError, match="optim.optimizer"):
        load_job(overrides={"optimizer": "sgd"})


@pytest.mark.parametrize(
    ("key", "value", "attr", "expected"),
    [
        ("iterations", "7", ("optim", "iterations"), 7),
        ("griffin_lim_iterations", "9", ("griffin_lim", "iterations"), 9),
        ("seed", "3", ("optim", "seed"), 3),
        ("model", "random", ("model", "name"), "random"),
        ("init", "content", ("optim", "init"), "content"),
        ("optimizer", "lbfgs", ("optim", "optimizer"), "lbfgs"),
        ("loss.style_weight", "2.5", ("loss", "style_weight"), 2.5),
        ("loss.style_layers", "conv1,conv2", ("loss", "style_layers"), ("conv1", "conv2")),
    ],
)
def test_overrides_by_short_and_dotted_name(key, value, attr, expected):
    extra = {"loss.style_layer_weights": "1,1"} if key == "loss.style_layers" else {}
    cfg = apply_overrides(load_job(), {key: value, **extra})
    section, name = attr
    assert getattr(getattr(cfg, section), name) == expected


def test_override_syntax_errors():
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_overrides(["iterations"])
    with pytest.raises(ConfigError, match="optim.iterations: expected an integer"):
        load_job(overrides={"iterations": "many"})
    with pytest.raises(ConfigError, match="nosuch: unknown key"):
        load_job(overrides={"nosuch": "1"})


def test_config_is_frozen_and_digest_tracks_values():
    cfg = load_job()
    with pytest.raises(AttributeError):
        cfg.method = "eq"  # type: ignore[misc]
    assert cfg.digest() == load_job().digest()
    assert cfg.digest() != load_job(overrides={"seed": "1"}).digest()


def test_digest_leaves_out_what_cannot_change_results():
    cfg = load_job()
    cepstral = cfg.digest()
    assert load_job(overrides={"loss.timbre_coefficients": "20"}).digest() != cepstral
    spectrum = apply_overrides(cfg, {"loss.timbre_envelope": "spectrum"})
    # the per-bin term ignores timbre_coefficients: any value gives one digest
    other = apply_overrides(spectrum, {"loss.timbre_coefficients": "30"})
    assert spectrum.digest() == other.digest() != cepstral


def test_a_method_revision_enters_the_digest_only_where_it_is_not_zero(monkeypatch):
    import hpc_nst.config as C
    from hpc_nst.registry import METHODS

    assert set(C.METHOD_REVISIONS) <= set(METHODS.names())  # no typo of a method's name
    paper = load_job()
    assert paper.digest() == "be81a869075ef780"  # revision 0: the digest stores were made with
    assert "method_revision" not in paper.record()
    sampler = load_job(overrides={"method": "sampler"})
    assert sampler.record()["method_revision"] == C.METHOD_REVISIONS["sampler"]
    before = sampler.digest()
    monkeypatch.setitem(C.METHOD_REVISIONS, "sampler", C.METHOD_REVISIONS["sampler"] + 1)
    bumped = load_job(overrides={"method": "sampler"})
    assert bumped.digest() != before
    assert bumped.with_seed(3).effective()["method_revision"] == C.METHOD_REVISIONS["sampler"]
