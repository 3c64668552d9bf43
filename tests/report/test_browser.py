"""The HTML report in a real headless Chromium: loads cleanly, images render, audio plays."""

from __future__ import annotations

import pytest

from .browser import Browser, chromium_path, file_url

pytestmark = pytest.mark.slow

#: Waits until every <audio> has metadata, an error or no usable source (networkState 3),
#: then reports on images and audio.
FACTS = """
(async () => {
  const audios = [...document.querySelectorAll('audio')];
  const deadline = Date.now() + 20000;
  while (Date.now() < deadline &&
         audios.some(a => a.readyState < 1 && !a.error && a.networkState !== 3)) {
    await new Promise(r => setTimeout(r, 100));
  }
  return {
    title: document.title,
    images: [...document.images].map(i => ({src: i.getAttribute('src'), complete: i.complete,
                                            width: i.naturalWidth})),
    audios: audios.map(a => {
      const s = a.querySelector('source');
      return {src: s ? s.getAttribute('src') : a.getAttribute('src'),
              type: s ? s.type : '', canPlay: s ? a.canPlayType(s.type) : 'n/a',
              readyState: a.readyState, networkState: a.networkState, duration: a.duration,
              error: a.error ? a.error.code : null};
    }),
    links: [...document.querySelectorAll('a[href], img[src], source[src]')].map(
      e => e.getAttribute('href') || e.getAttribute('src')),
    failed: document.body.innerText.includes('broken'),
  };
})()
"""


def test_report_page_in_headless_chromium(real_report):
    binary = chromium_path()
    if binary is None:
        pytest.skip("needs Chromium (Debian package chromium)")
    pytest.importorskip("websocket", reason="needs websocket-client (pip install -e '.[test]')")
    with Browser(binary) as browser:
        browser.navigate(file_url(real_report / "index.html"))
        facts = browser.evaluate(FACTS)
        errors = browser.errors()
    assert errors == []
    assert facts["title"] == "hpc-nst evaluation report"
    # Two pairs x two stores: a four-panel figure each, loss curves for the optimised store.
    assert len(facts["images"]) == 6
    for img in facts["images"]:
        assert img["complete"] and img["width"] > 0, img
    # Per pair: content, style, target once, plus each store's output.
    assert len(facts["audios"]) == 2 * (3 + 2)
    for a in facts["audios"]:
        assert a["canPlay"] in ("probably", "maybe"), a
        assert a["error"] is None and a["readyState"] >= 1 and a["networkState"] != 3, a
        assert a["duration"] == pytest.approx(2.56, abs=0.02), a
    # Offline: every link is relative and inside the report folder.
    for link in facts["links"]:
        assert not link.startswith(("http:", "https:", "file:", "/", "..")), link
        assert link.startswith("#") or (real_report / link.split("#")[0]).is_file(), link
    assert facts["failed"]  # the failing pair is listed
