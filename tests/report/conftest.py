"""A tiny real batch store (2 triplets of the committed benchmark + 1 failing pair), its report."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from hpc_nst.config import STFTConfig
from hpc_nst.models.alexnet import AudioAlexNet
from hpc_nst.models.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[2]
TRIPLETS = ROOT / "manifests" / "triplets"
TINY = ["model=random", "width=4", "iterations=3", "griffin_lim_iterations=2"]
CLASSES = ["Flute", "Soprano Sax", "Orchestral Harp"]


def tiny_classifier(path: Path) -> Path:
    """A random 3-class checkpoint with GM class names (stands in for the shipped classifier)."""
    torch.manual_seed(0)
    save_checkpoint(AudioAlexNet(n_classes=len(CLASSES), width=4), path, STFTConfig(),
                    {"classes": CLASSES})
    return path


@pytest.fixture(scope="session")
def real_stores(tmp_path_factory) -> dict[str, Path]:
    """``nst`` (tiny random-feature job) and ``eq`` stores over the same 3-row manifest."""
    from hpc_nst.cli import main

    d = tmp_path_factory.mktemp("stores")
    audio = d / "audio"
    audio.mkdir()
    for pid in ("s256-000", "s256-001"):
        for role in ("content", "style", "target"):
            shutil.copy(TRIPLETS / "audio" / f"{pid}_{role}.flac", audio)
    shutil.copy(TRIPLETS / "labels.csv", d / "labels.csv")
    (d / "manifest.csv").write_text(
        "pair_id,content,style,target\n"
        + "".join(f"{p},audio/{p}_content.flac,audio/{p}_style.flac,audio/{p}_target.flac\n"
                  for p in ("s256-000", "s256-001"))
        + "broken,audio/nope.flac,audio/s256-000_style.flac,\n")
    stores = {}
    for name, extra in (("nst", [x for s in TINY for x in ("--set", s)]),
                        ("eq", ["--job", str(ROOT / "jobs" / "eq.toml")])):
        stores[name] = d / f"{name}.zarr"
        rc = main(["run", str(d / "manifest.csv"), "-o", str(stores[name]), "--skip-invalid",
                   "--workers", "1", "--quiet", "--progress-interval", "0", *extra])
        assert rc == 1  # one pair failed
    stores["classifier"] = tiny_classifier(d / "classifier.pt")
    return stores


@pytest.fixture(scope="session")
def real_report(real_stores, tmp_path_factory) -> Path:
    """The report folder built from both stores with every metric group."""
    from hpc_nst.report.build import ReportOptions, build_report

    out = tmp_path_factory.mktemp("report") / "rep"
    build_report([real_stores["nst"], real_stores["eq"]], out,
                 ReportOptions(classifier=real_stores["classifier"]))
    return out
