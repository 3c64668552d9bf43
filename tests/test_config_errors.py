"""Every key of every shipped preset: a wrong value or a misspelt key is refused before any
work, with the key named and, for a near miss, the key meant."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpc_nst.cli import main
from hpc_nst.config import apply_overrides, load_job
from hpc_nst.errors import ConfigError

PRESETS = sorted((Path(__file__).resolve().parents[1] / "jobs").glob("*.toml"))
NESTED = ("term_params", "term_weights")  # tables of their own (tested in test_config.py)


def _flat(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict) and k not in NESTED:
            yield from _flat(v, f"{prefix}{k}.")
        elif k not in NESTED:
            yield f"{prefix}{k}", v


def _swap(key: str) -> str:
    """The key with its last two letters swapped (a typical typo)."""
    return key[:-2] + key[-1] + key[-2]


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_key_refuses_bad_values_and_near_misses(preset):
    cfg = load_job(preset)
    keys = list(_flat(cfg.to_dict()))
    assert len(keys) > 25
    for key, _ in keys:
        name = key.rsplit(".", 1)[-1]
        for bad in ("zz-not-valid", "-5"):
            if bad == "-5" and name in ("content_layers", "style_layers", "timbre_envelope",
                                        "method", "optimizer", "init", "name"):
                continue  # text keys: "zz-not-valid" covers them
            with pytest.raises(ConfigError) as info:
                apply_overrides(cfg, {key: bad})
            assert name in str(info.value), (key, bad, str(info.value))
        with pytest.raises(ConfigError, match=rf"did you mean '{name}'\?"):
            apply_overrides(cfg, {_swap(key): "1"})


def test_misspelt_short_name_on_the_command_line(capsys):
    assert main(["run", "m.csv", "-o", "x.zarr", "--set", "optim.iteratons=5"]) == 2
    err = capsys.readouterr().err
    assert "optim.iteratons: unknown key (did you mean 'iterations'?)" in err
    assert main(["run", "m.csv", "-o", "x.zarr", "--set", "iteratons=5"]) == 2
    assert "did you mean 'iterations'?" in capsys.readouterr().err
    assert main(["run", "m.csv", "-o", "x.zarr", "--set", "method=nts"]) == 2
    assert "unknown method 'nts' (did you mean 'notes'?)" in capsys.readouterr().err


def test_a_short_name_at_a_job_files_top_level_names_its_section(tmp_path, capsys):
    job = tmp_path / "j.toml"
    job.write_text('method = "nst"\niterations = 5\n')
    assert main(["run", "m.csv", "-o", "x.zarr", "--job", str(job)]) == 2
    err = capsys.readouterr().err
    assert "iterations: unknown key (in a job file it goes in its section: [optim] " \
           "iterations = ...; the short name is for --set)" in err
    assert main(["run", "m.csv", "-o", "x.zarr", "--set", "method=nts"]) == 2
    assert "unknown method 'nts' (did you mean 'notes'?)" in capsys.readouterr().err


def test_shipped_presets_load_by_name_from_any_folder(tmp_path, monkeypatch):
    """README's `--job jobs/layered.toml` only worked from inside the checkout."""
    from hpc_nst.config import PRESETS, load_job

    monkeypatch.chdir(tmp_path)
    want = load_job(PRESETS / "layered.toml")
    for name in ("layered", "layered.toml", "jobs/layered.toml"):
        assert load_job(name) == want
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "layered.toml").write_text('method = "eq"\n')
    assert load_job("jobs/layered.toml").method == "eq"  # a file that is there comes first
    with pytest.raises(ConfigError, match=r"layerd: job file not found; the shipped presets "
                       r"are .*layered.*\(did you mean 'layered'\?\)"):
        load_job("layerd")
    with pytest.raises(ConfigError, match=r"other/eq.toml: job file not found"):
        load_job("other/eq.toml")  # a path elsewhere is not taken for a preset


def test_a_section_key_given_without_its_section_is_pointed_at() -> None:
    """`--set precision=bf16` listed only the sections; the key is optim.precision."""
    with pytest.raises(ConfigError, match=r"did you mean optim\.precision\?"):
        apply_overrides(load_job(None), {"precision": "bf16"})
