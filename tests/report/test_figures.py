"""The per-pair figure: four panels for an optimising method, three for one that does not."""

from __future__ import annotations

import numpy as np
from PIL import Image

from hpc_nst.config import STFTConfig
from hpc_nst.report.figures import pair_figure


def test_a_method_without_optimisation_gets_no_initial_noise_panel(tmp_path):
    """Its stored ``init`` is its output: a panel titled "Initial noise" showed the result."""
    rng = np.random.default_rng(0)
    specs = {k: rng.random((257, 60)).astype(np.float32) for k in
             ("init", "content", "style", "output")}
    four = Image.open(pair_figure(specs, tmp_path / "nst.png", STFTConfig()))
    three = Image.open(pair_figure(specs, tmp_path / "eq.png", STFTConfig(), optimised=False))
    assert four.height == three.height
    # 3.2 inches per panel at the same dpi: three panels are three quarters as wide
    assert abs(three.width / four.width - 0.75) < 0.02


def test_the_report_draws_three_panels_for_eq_and_four_for_nst(tmp_path):
    import soundfile as sf

    from hpc_nst.cli import main
    from tests.batch.conftest import SR, TINY, tone

    for name, f0 in (("a", 220), ("b", 330)):
        sf.write(tmp_path / f"{name}.wav", tone(f0, 0.5), SR)
    (tmp_path / "m.csv").write_text("pair_id,content,style\np1,a.wav,b.wav\n")
    sets = [x for s in TINY for x in ("--set", s)]
    widths = {}
    for job, extra in (("eq", ["--job", "jobs/eq.toml"]), ("nst", sets)):
        store = tmp_path / f"{job}.zarr"
        assert main(["run", str(tmp_path / "m.csv"), "-o", str(store), "--workers", "1",
                     "--progress-interval", "0", *extra]) == 0
        assert main(["report", str(store), "-o", str(tmp_path / f"r-{job}"), "--quiet",
                     "--metrics", "run"]) == 0
        (png,) = (tmp_path / f"r-{job}" / "figures").rglob("p1.png")
        widths[job] = Image.open(png).width
    assert abs(widths["eq"] / widths["nst"] - 0.75) < 0.02
