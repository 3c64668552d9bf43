"""Metric groups as modules: the built-in ``level`` group, the contract's checks, and a
plugin's group through report, ``--metrics``, export ``--report`` and ``--where``."""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hpc_nst.errors import RegistryError
from hpc_nst.metrics.groups import MetricGroup, MetricInputs, register_metric_group
from hpc_nst.metrics.groups.level import level
from hpc_nst.registry import METRIC_GROUPS

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
SR = 16000


def _sine(db_rms: float, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    return (10 ** (db_rms / 20) * np.sqrt(2) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_level_measures_loudness_change_and_silence():
    content = _sine(-20.0)
    out = np.concatenate([_sine(-26.0, 0.25), np.zeros(SR // 4, np.float32)])
    got = level(MetricInputs("p", SR, out, {}, lambda role: content if role == "content"
                             else None))
    # half the output silent: 3 dB less RMS than its sounding half
    assert got["level_output_dbfs"] == pytest.approx(-26.0 - 3.01, abs=0.05)
    assert got["level_change_db"] == pytest.approx(-9.01, abs=0.05)
    assert got["peak_output_dbfs"] == pytest.approx(-26.0 + 3.01, abs=0.05)
    assert got["silent_fraction"] == pytest.approx(0.5, abs=0.02)
    silent = level(MetricInputs("p", SR, np.zeros(SR, np.float32)))
    assert silent["silent_fraction"] == 1.0 and math.isnan(silent["level_output_dbfs"])
    assert "level_change_db" not in silent  # no content given


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "pitch"}, "one of the report's own groups"),
    ({"columns": ("Bad-Name",)}, "lower-case letters"),
    ({"columns": ()}, "declares no column"),
    ({"columns": ("a", "a")}, "declared twice"),
])
def test_a_group_breaking_the_contract_is_refused_at_registration(kwargs, match):
    spec = {"name": "mine", "summary": "", "columns": ("a",), "compute": lambda i: {}, **kwargs}
    with pytest.raises(RegistryError, match=match):
        MetricGroup(**spec)


def test_a_column_the_report_already_has_is_refused_naming_both():
    from hpc_nst.report.evaluate import group_columns

    register_metric_group(MetricGroup("clash", "", ("lsd_db",), lambda i: {}))
    try:
        with pytest.raises(RegistryError, match="'clash': column 'lsd_db' is the report's"):
            group_columns()
    finally:
        METRIC_GROUPS.unregister("clash")
    assert "level_output_dbfs" in group_columns()


@pytest.fixture
def toy_metric(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.setenv("HPC_NST_PLUGINS", "toy_metric")
    sys.modules.pop("toy_metric", None)
    importlib.import_module("toy_metric")
    yield METRIC_GROUPS.get("toy_metric")
    METRIC_GROUPS.unregister("toy_metric")
    sys.modules.pop("toy_metric", None)


@pytest.mark.slow
def test_a_plugin_group_reaches_report_export_and_where(toy_metric, tmp_path):
    from hpc_nst.cli import main
    from tests.export.test_export_folder import _copy_store

    store = _copy_store(tmp_path / "in", tmp_path / "s.zarr",
                        (("a", 220, 0.3), ("b", 330, 0.4), ("c", 440, 0.2)),
                        "pair_id,content,style\nab,a.wav,b.wav\nbc,b.wav,c.wav\n"
                        "ca,c.wav,a.wav\n")
    assert main(["report", str(store), "-o", str(tmp_path / "rep"), "--metrics", "all",
                 "--details", "0"]) == 0
    rows = pd.read_csv(tmp_path / "rep" / "pairs.csv").set_index("pair_id")
    assert rows.loc["bc", "toy_output_s"] == pytest.approx(0.4, abs=1e-3)
    assert rows.loc["bc", "toy_length_ratio"] == pytest.approx(1.0)  # content-copy
    assert rows["level_change_db"].abs().max() < 0.01  # the built-in group, all by default
    summary = pd.read_csv(tmp_path / "rep" / "summary_by_job.csv")
    assert any(c.startswith("toy_output_s") for c in summary.columns)
    # only the group asked for
    assert main(["report", str(store), "-o", str(tmp_path / "only"), "--metrics",
                 "toy_metric", "--details", "0"]) == 0
    only = pd.read_csv(tmp_path / "only" / "pairs.csv")
    assert only["toy_output_s"].notna().all() and only["level_output_dbfs"].isna().all()
    # the export takes a plugin group's columns from the report: no plugin needed there
    METRIC_GROUPS.unregister("toy_metric")
    out = tmp_path / "exp"
    assert main(["export", str(store), "-o", str(out), "--report", str(tmp_path / "rep"),
                 "--where", "toy_output_s > 0.25"]) == 0
    meta = pd.read_json(out / "metadata.jsonl", lines=True).set_index("pair_id")
    assert sorted(meta.index) == ["ab", "bc"] and "level_output_dbfs" in meta.columns
    assert meta.loc["ab", "toy_output_s"] == pytest.approx(0.3, abs=1e-3)


def test_a_group_returning_an_undeclared_column_is_a_note_not_a_stop(tmp_path):
    """One undeclared column or one value that is no number emptied every column of the
    group for the pair; now only that column is left out, with a note."""
    from hpc_nst.report.evaluate import Evaluator

    register_metric_group(MetricGroup("sloppy", "", ("x", "z", "w"),
                                      lambda i: {"x": 1, "y": 2, "z": "abc", "w": True}))
    try:
        ev = Evaluator(("sloppy",))
        pair = type("P", (), {"pair_id": "p", "status": "done", "error": "",
                              "paths": ("a", "b", ""), "seed": 0, "device": "cpu",
                              "attempts": 1, "checksum": "", "audio": np.zeros(160),
                              "content": None, "style": None, "target": None})()
        info = type("I", (), {"label": "j", "method": "m", "sample_rate": SR, "terms": ()})()
        row = ev.row(info, pair)
        assert row["x"] == 1.0 and row["w"] == 1.0 and math.isnan(row["z"])
        assert "sloppy: returned undeclared column(s) ['y']" in row["notes"]
        assert "sloppy: column 'z' is 'abc', not a number (left empty)" in row["notes"]
    finally:
        METRIC_GROUPS.unregister("sloppy")


@pytest.mark.slow
def test_an_export_with_a_report_imports_neither_torch_nor_the_plugins(tmp_path):
    """Reading the metric groups' columns loaded every plugin and, with them, the engine
    (torch: 1.4 s and 190 MB more for an export)."""
    import os
    import subprocess

    from tests.export.test_export_folder import _copy_store

    store = _copy_store(tmp_path / "in", tmp_path / "s.zarr", (("a", 220, 0.3),),
                        "pair_id,content,style\naa,a.wav,a.wav\n")
    from hpc_nst.cli import main

    assert main(["report", str(store), "-o", str(tmp_path / "rep"), "--metrics", "level",
                 "--details", "0"]) == 0
    code = ("import sys\nfrom hpc_nst.cli import main\n"
            f"rc = main(['export', {str(store)!r}, '-o', {str(tmp_path / 'e')!r}, '--report', "
            f"{str(tmp_path / 'rep')!r}, '--where', 'silent_fraction < 0.5'])\n"
            "print(rc, 'torch' in sys.modules, 'toy_metric' in sys.modules)\n")
    env = {**os.environ, "HPC_NST_PLUGINS": "toy_metric", "PYTHONPATH": os.pathsep.join(
        [str(PLUGINS), str(Path(__file__).resolve().parents[2])])}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.splitlines()[-1].split() == ["0", "False", "False"], \
        out.stdout + out.stderr


def test_a_group_that_raises_is_a_note_naming_it_not_a_stopped_report():
    """A KeyError in a plugin's group aborted the whole report with a bare traceback."""
    from hpc_nst.report.evaluate import Evaluator

    def broken(inputs):  # noqa: ANN001, ANN202
        return {"z": inputs.labels["nope"]}

    register_metric_group(MetricGroup("broken", "", ("z",), broken))
    try:
        pair = type("P", (), {"pair_id": "p", "status": "done", "error": "",
                              "paths": ("a", "b", ""), "seed": 0, "device": "cpu",
                              "attempts": 1, "checksum": "", "audio": np.zeros(160),
                              "content": None, "style": None, "target": None})()
        info = type("I", (), {"label": "j", "method": "m", "sample_rate": SR, "terms": ()})()
        row = Evaluator(("broken",)).row(info, pair)
        assert "broken: metric group 'broken' failed: KeyError: 'nope'" in row["notes"]
        assert math.isnan(row["z"])
    finally:
        METRIC_GROUPS.unregister("broken")
