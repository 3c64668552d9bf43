"""Registries of methods and loss terms: lookups, errors before work, plugins end to end."""

from __future__ import annotations

import csv
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from hpc_nst.config import ConfigError, load_job
from hpc_nst.engine.methods import get_method, run_method
from hpc_nst.engine.terms import recorded_terms
from hpc_nst.errors import HpcNstError, RegistryError
from hpc_nst.registry import METHODS, TERMS
from tests.conftest import harmonic_tone

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"


@pytest.fixture
def toy_term(monkeypatch):
    """The toy term registered here and, through the environment, on every dask worker."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv("HPC_NST_PLUGINS", "toy_term")
    monkeypatch.setenv("PYTHONPATH", str(PLUGINS))
    sys.modules.pop("toy_term", None)
    importlib.import_module("toy_term")
    yield TERMS.get("toy")
    TERMS.unregister("toy")
    sys.modules.pop("toy_term", None)


def test_builtin_names():
    assert set(METHODS.names()) == {"nst", "content-copy", "style-copy", "eq", "ulyanov", "notes",
                                    "envelope-eq", "harmonic", "sampler", "layered", "layered-post"}
    assert {"content", "style", "envelope", "timbre"} <= set(TERMS.names())
    assert recorded_terms(load_job().loss) == ("total", "content", "style", "envelope", "timbre")


@pytest.mark.parametrize("override, key, name", [
    ({"method": "nts"}, "method", "'nts'"),
    ({"loss.term_weights.texturee": "1"}, "loss.term_weights.texturee", "'texturee'"),
    ({"loss.term_params.style.lags": "2"}, "loss.term_params.style.lags", "'lags'"),
])
def test_unknown_names_are_refused_with_the_choices(override, key, name):
    with pytest.raises(RegistryError) as info:
        load_job(overrides=override)
    msg = str(info.value)
    assert msg.startswith(key) and name in msg
    assert isinstance(info.value, HpcNstError) and isinstance(info.value, ConfigError)
    if key == "method":
        assert ("content-copy, envelope-eq, eq, harmonic, layered, layered-post, notes, nst, "
                "sampler, style-copy, ulyanov") in msg
        assert "HPC_NST_PLUGINS=<module>" in msg  # a plugin's name misspelt or not loaded


def test_unregistered_method_is_never_run_as_something_else():
    cfg = load_job()
    object.__setattr__(cfg, "method", "gone")  # a name that slipped past validation
    with pytest.raises(RegistryError, match="unknown method 'gone'"):
        run_method([harmonic_tone(220, 0.3)], [harmonic_tone(330, 0.3)], cfg)


@pytest.mark.parametrize("override, key", [
    ({"stft.sample_rate": "0"}, "stft.sample_rate"),
    ({"optim.noise_std": "-1"}, "optim.noise_std"),
    ({"loss.content_layers": ""}, "loss.content_layers"),
    ({"loss.style_layers": "conv1,conv9"}, "loss.style_layers"),
    ({"model": "/no/such/checkpoint.pt"}, "model.name"),
    ({"loss.term_weights": "3"}, "loss.term_weights"),
])
def test_validation_gaps_name_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_job(overrides=override)
    assert str(info.value).startswith(key), str(info.value)


def test_digest_ignores_neutral_keys_and_zero_weight_terms(toy_term):
    base = load_job()
    old = base.to_dict()
    del old["loss"]["term_weights"], old["loss"]["term_params"]  # a store from before the keys
    from hpc_nst.config import effective_parameters

    assert effective_parameters(old) == effective_parameters(base.to_dict())
    off = load_job(overrides={"toy_weight": "0", "loss.term_params.toy.offset": "3"})
    assert off.digest() == base.digest()
    on = load_job(overrides={"toy_weight": "2"})
    assert on.loss.term_weights == {"toy": 2.0} and on.digest() != base.digest()
    assert recorded_terms(on.loss)[-1] == "toy"


def test_toy_term_changes_the_optimum(toy_term):
    c, s = harmonic_tone(220, 0.4), 0.2 * harmonic_tone(440, 0.4)
    cfg = load_job(overrides={"iterations": "20", "width": "4", "griffin_lim_iterations": "2",
                              "toy_weight": "50"})
    (r,) = run_method([c], [s], cfg, seeds=[0])
    assert set(r.losses) == {"total", "content", "style", "envelope", "timbre", "toy"}
    assert r.losses["toy"][-1] < r.losses["toy"][0]
    assert get_method("nst").loss_terms(cfg)[-1] == "toy"


@pytest.mark.slow
def test_toy_term_through_run_store_and_report(toy_term, tmp_path):
    """A term from a plugin module: validated by the driver, run on dask workers (which load
    it from HPC_NST_PLUGINS), recorded on the store's term axis, a column of the report."""
    import soundfile as sf
    import xarray as xr

    from hpc_nst.cli import main

    for name, f0 in (("a", 220), ("b", 330)):
        sf.write(tmp_path / f"{name}.wav", harmonic_tone(f0, 0.4), 16000)
    (tmp_path / "m.csv").write_text("pair_id,content,style\np1,a.wav,b.wav\np2,b.wav,a.wav\n")
    store = tmp_path / "toy.zarr"
    sets = ["iterations=4", "griffin_lim_iterations=2", "width=4", "toy_weight=1"]
    argv = ["run", str(tmp_path / "m.csv"), "-o", str(store), "--workers", "1",
            "--progress-interval", "0", *[x for s in sets for x in ("--set", s)]]
    assert main(argv) == 0
    ds = xr.open_zarr(store)
    assert list(ds.term.values) == ["total", "content", "style", "envelope", "timbre", "toy"]
    toy = ds.loss.sel(term="toy").values
    assert np.isfinite(toy[:, 0]).all() and (toy[:, 0] > 0).all()
    assert main(["report", str(store), "-o", str(tmp_path / "rep"), "--metrics", "run"]) == 0
    with open(tmp_path / "rep" / "pairs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 2 and all(float(r["loss_toy"]) >= 0 for r in rows)


def test_a_second_thread_waits_for_discovery_instead_of_seeing_half_a_registry(
        tmp_path, monkeypatch):
    """Two tasks on one worker look a method up at once: the thread that comes second must
    not see the registry before every module has registered (it once got "unknown method
    'nst'" while the first thread was still importing)."""
    import sys
    import threading

    from hpc_nst.registry import Registry

    pkg = tmp_path / "slow_parts"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a_slow.py").write_text(
        "import time\nfrom tests.engine.test_registry import SLOW\n"
        "time.sleep(0.3)\nSLOW.register('slow', object())\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry("part", "slow_parts")
    monkeypatch.setattr(sys.modules[__name__], "SLOW", reg, raising=False)
    seen: list[tuple[str, ...]] = []
    threads = [threading.Thread(target=lambda: seen.append(reg.names())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [("slow",), ("slow",)]


def test_a_plugin_that_breaks_on_import_fails_every_lookup_with_its_name(tmp_path):
    """Not a half-loaded registry on the second lookup (a dask retry): the same error."""
    import subprocess

    (tmp_path / "broken_plugin.py").write_text(
        "from hpc_nst.registry import METHODS\n"
        "METHODS.register('half', object())\n"
        "raise RuntimeError('boom')\n")
    code = ("from hpc_nst.registry import METHODS\n"
            "for _ in range(2):\n"
            "    try:\n"
            "        METHODS.get('nst')\n"
            "    except Exception as exc:\n"
            "        print(type(exc).__name__, exc)\n")
    env = {**__import__("os").environ, "HPC_NST_PLUGINS": "broken_plugin",
           "PYTHONPATH": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert len(out) == 2 and out[0] == out[1], out
    assert out[0].startswith("RegistryError") and "RuntimeError: boom" in out[0]


@pytest.mark.parametrize("method", ["sampler", "harmonic", "layered", "layered-post"])
def test_a_method_bound_to_one_sample_rate_is_refused_another_with_the_job(method) -> None:
    """They raised "method layered works at 16000 Hz" (for layered-post too) after the inputs
    were read: a traceback with exit 1 from `transfer`, a failed pair per pair in a batch."""
    from hpc_nst.config import apply_overrides

    with pytest.raises(ConfigError, match=f"method {method} works at 16000 Hz only, not 22050"):
        apply_overrides(load_job(None), {"method": method, "stft.sample_rate": "22050"})
    apply_overrides(load_job(None), {"method": "eq", "stft.sample_rate": "22050"})  # any rate


def test_settings_a_method_never_reads_are_named() -> None:
    """`--job layered --set iterations=3` gave the same audio under another job digest (and
    a store of another shape), without a word."""
    from hpc_nst.config import apply_overrides
    from hpc_nst.engine.methods.base import optimises, unread_overrides

    layered = apply_overrides(load_job(None), {"method": "layered"})
    keys = ["iterations", "style_weight", "griffin_lim.iterations", "seed", "stft.hop_length",
            "method", "model"]
    assert not optimises(layered)
    assert unread_overrides(layered, keys) == ["iterations", "style_weight",
                                                "griffin_lim.iterations", "model"]
    assert optimises(load_job(None)) and unread_overrides(load_job(None), keys) == []


def _run_python(tmp_path: Path, code: str, plugins: str) -> list[str]:
    """``code`` in a fresh interpreter with ``HPC_NST_PLUGINS`` = ``plugins`` (in tmp_path)."""
    import os
    import subprocess

    env = {**os.environ, "HPC_NST_PLUGINS": plugins, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), str(Path(__file__).resolve().parents[2])])}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, check=True).stdout.splitlines()


LOOKUP = ("from hpc_nst.registry import METHODS, TERMS\n"
          "try:\n"
          "    METHODS.get('nst')\n"
          "    print(type(TERMS.get('style')).__module__)\n"
          "except Exception as exc:\n"
          "    print(type(exc).__name__, exc)\n")


def test_a_failing_plugin_is_named_and_a_missing_dependency_told_apart(tmp_path):
    """'a plugin failed on import (RuntimeError: boom)' named no plugin, and a plugin whose
    own import was missing was reported as the plugin not being on PYTHONPATH."""
    (tmp_path / "boom_plugin.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "dep_plugin.py").write_text("import not_installed_dependency_xyz\n")
    out = _run_python(tmp_path, LOOKUP, "boom_plugin")
    assert "'boom_plugin' failed on import (RuntimeError: boom)" in out[0], out
    out = _run_python(tmp_path, LOOKUP, "dep_plugin")
    assert "'dep_plugin' failed on import: a module it imports is missing" in out[0], out
    assert "not_installed_dependency_xyz" in out[0]
    out = _run_python(tmp_path, LOOKUP, "no_such_plugin_xyz")
    assert "cannot import plugin module 'no_such_plugin_xyz'" in out[0], out


def test_a_plugin_overrides_a_builtin_term_whichever_registry_is_looked_up_first(tmp_path):
    """Plugins were loaded by the first registry looked up (methods), before the built-in
    terms were imported: the built-in 'style' then clashed with the plugin's override."""
    (tmp_path / "my_style.py").write_text(
        "from hpc_nst.engine.terms import Term, register_term\n"
        "class MyStyle(Term):\n    name = 'style'\n"
        "register_term(MyStyle, replace=True)\n")
    assert _run_python(tmp_path, LOOKUP, "my_style") == ["my_style"]
    (tmp_path / "clash_style.py").write_text(
        "from hpc_nst.engine.terms import Term, register_term\n"
        "@register_term\nclass MyStyle(Term):\n    name = 'style'\n")
    out = _run_python(tmp_path, LOOKUP, "clash_style")
    assert out[0].startswith("RegistryError") and "registered twice" in out[0], out
    assert "hpc_nst.engine.terms.style)>, then <term style (clash_style)>" in out[0]
    assert "replace=True" in out[0]


def test_a_per_pair_plugin_method_replaces_a_builtin_one(tmp_path):
    """The duplicate-name error says replace=True, which per_pair_method did not take."""
    (tmp_path / "my_eq.py").write_text(
        "from hpc_nst.engine.methods.base import per_pair_method\n"
        "per_pair_method('eq', 'my eq', lambda c, s, cfg: c, replace=True)\n")
    code = ("from hpc_nst.registry import METHODS\n"
            "print(METHODS.get('eq').summary)\n")
    assert _run_python(tmp_path, code, "my_eq") == ["my eq"]


def test_a_term_named_total_is_refused():
    """'total' is the weighted sum's curve: a term of that name overwrote it in the store."""
    from hpc_nst.engine.terms import Term, register_term

    class Total(Term):
        name = "total"

    with pytest.raises(RegistryError, match="'total'.*give the term another name"):
        register_term(Total)
    assert "total" not in TERMS


class _Bad:
    """Terms that break their contract: one value per item, finite."""

    @staticmethod
    def register(name: str, value):  # noqa: ANN001, ANN205
        from hpc_nst.engine.terms import Term, register_term

        cls = type(name, (Term,), {"name": name, "value": lambda self, cur, tg: value(cur)})
        register_term(cls)
        return cls


def test_a_term_of_the_wrong_shape_or_nan_is_named(tmp_path):
    """A (B, T) value failed the whole shard in the store writer ("could not broadcast"), a
    (B, 1) one broadcast the total to (B, B), and a NaN said "loss became NaN/Inf" without
    saying which term."""
    from hpc_nst.errors import TransferError

    c, s = harmonic_tone(220, 0.3), harmonic_tone(330, 0.3)
    sets = {"iterations": "3", "width": "4", "griffin_lim_iterations": "2"}
    _Bad.register("per_frame", lambda cur: cur.x.mean(1))
    _Bad.register("column", lambda cur: cur.x.mean((1, 2))[:, None])
    _Bad.register("nan_term", lambda cur: cur.x.mean((1, 2)) * float("nan"))
    try:
        for name, shape in (("per_frame", r"\(1, 31\)"), ("column", r"\(1, 1\)")):
            cfg = load_job(overrides={**sets, f"{name}_weight": "1"})
            with pytest.raises(TransferError, match=f"loss term '{name}' returned a value of "
                               f"shape {shape} for a batch of 1.*one number per item"):
                run_method([c], [s], cfg, seeds=[0], device="cpu")
        cfg = load_job(overrides={**sets, "nan_term_weight": "1"})
        (r,) = run_method([c], [s], cfg, seeds=[0])
        assert r.error is not None and "'nan_term' from recorded point 0" in r.error
    finally:
        for name in ("per_frame", "column", "nan_term"):
            TERMS.unregister(name)


def test_a_plugin_term_weight_without_its_plugin_says_how_to_load_it():
    """'flux_weight: unknown key (known: griffin_lim, loss, ...)' said nothing of plugins,
    and '[loss] flux_weight' in a job file nothing of [loss.term_weights]."""
    for key in ("flux_weight", "loss.flux_weight"):
        with pytest.raises(ConfigError) as info:
            load_job(overrides={key: "2"})
        msg = str(info.value)
        assert msg.startswith(f"{key}: unknown key (a loss term's weight? no term 'flux'")
        assert "HPC_NST_PLUGINS=<its module>" in msg and "[loss.term_weights] flux" in msg


def test_a_registered_term_s_weight_in_the_loss_section_says_where_it_goes(toy_term):
    """'[loss] toy_weight = 1' with the plugin loaded said "no term 'toy' is registered"."""
    with pytest.raises(ConfigError) as info:
        load_job(overrides={"loss.toy_weight": "1"})
    msg = str(info.value)
    assert "in a job file it goes in [loss.term_weights] toy = ..." in msg
    assert "is registered" not in msg


def test_a_term_asking_for_a_layer_the_network_lacks_is_refused_with_the_job():
    """It failed every pair at run time (KeyError: unknown feature layer(s) ['conv9'])."""
    from hpc_nst.engine.terms import Term, register_term

    class Deep(Term):
        name = "deep"

        def layers(self, loss):  # noqa: ANN001, ANN201
            return {"conv9"}, set(), set()

    register_term(Deep)
    try:
        with pytest.raises(ConfigError, match=r"loss.term_weights.deep: term 'deep' asks for "
                           r"unknown feature layer\(s\) \['conv9'\]"):
            load_job(overrides={"deep_weight": "1"})
        load_job(overrides={"deep_weight": "0"})  # off: not refused
    finally:
        TERMS.unregister("deep")


def test_a_failing_built_in_module_is_not_blamed_on_the_plugins(tmp_path):
    """With plugins set, the built-in modules are imported first; one of them failing (a
    broken torch) was reported as "HPC_NST_PLUGINS / hpc_nst.plugins: a plugin failed"."""
    (tmp_path / "fine_plugin.py").write_text("")
    code = ("import hpc_nst.registry as r\n"
            "def broken(package):\n"
            "    raise ImportError('libtorch_cpu.so: cannot open shared object file')\n"
            "r._import_package = broken\n"
            "try:\n"
            "    r.METHODS.get('nst')\n"
            "except Exception as exc:\n"
            "    print(type(exc).__name__, exc)\n")
    out = _run_python(tmp_path, code, "fine_plugin")
    assert out == ["ImportError libtorch_cpu.so: cannot open shared object file"], out
