"""The HTML page from plain records: offline, escaped, grouped by pair, failures listed."""

from __future__ import annotations

import re

from hpc_nst.report import html as H


def _page() -> str:
    stores = [H.StoreSummary("nst", "nst", "/x/nst.zarr", 3, 2, 1,
                             failures=[("bad<1>", "content x.wav: file not found")]),
              H.StoreSummary("eq", "eq", "/x/eq.zarr", 2, 2, 0)]
    pair = H.PairDetail("p 1", "Flute → Violin",
                        {"content": "audio/inputs/c.flac", "style": "audio/inputs/s.flac"})
    pair.runs.append(H.RunDetail("nst", "nst", "figures/nst/p 1.png", "figures/nst/p 1.loss.png",
                                 "audio/nst/p 1.flac", {"lsd_db": 12.5, "loss_total": 3.0,
                                                        "pitch_jaccard": float("nan")}))
    pair.runs.append(H.RunDetail("eq", "eq", "figures/eq/p 1.png", None, "audio/eq/p 1.flac"))
    summaries = {"job": (["job", "pairs", "lsd_db"],
                         [{"job": "nst", "pairs": 3, "lsd_db": "12.5 ± 1"}], ["job"],
                         ["job", "lsd_db"])}
    return H.render_index("T <&>", stores, summaries, {"pairs": ["pairs.csv"]}, [pair],
                          notes=["a note"])


def test_page_structure_and_escaping():
    page = _page()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>T &lt;&amp;&gt;</title>" in page
    assert "bad&lt;1&gt;" in page and "content x.wav: file not found" in page
    assert page.count("<audio") == 4  # content, style (no target), two outputs
    assert page.count("<img") == 3
    assert 'src="figures/nst/p%201.png"' in page and 'type="audio/flac"' in page
    assert "lsd_db = 12.5" in page and "pitch_jaccard" not in page.split("Pairs")[1]
    assert "every metric by job" in page  # the full table is folded under the headline one


def test_page_is_offline():
    page = _page()
    for url in re.findall(r'(?:src|href)="([^"]*)"', page):
        assert not re.match(r"^(https?:|//|/|file:)", url), url
    assert "<script" not in page and "@import" not in page
