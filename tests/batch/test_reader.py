"""Streaming reads of a store (several bulk windows, shards, batches) and label sources."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from hpc_nst.batch import labels, reader
from hpc_nst.batch import store as st
from hpc_nst.batch import store_creation as sc
from hpc_nst.batch.manifest import read_manifest
from hpc_nst.batch.tasks import store_order
from hpc_nst.batch.writer import digest
from hpc_nst.config import load_job

SR = 16000


def _fake_store(tmp_path, n: int = 30, ppt: int = 4):
    t = np.arange(int(0.2 * SR)) / SR
    sf.write(tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    (tmp_path / "m.csv").write_text("pair_id,content,style,target\n" + "".join(
        f"p{i:03d},a.wav,a.wav,{'a.wav' if i % 2 else ''}\n" for i in range(n)))
    cfg = load_job(overrides={"iterations": "4", "model": "random", "width": "4"})
    man = read_manifest(tmp_path / "m.csv", cfg)
    order = store_order(man.pairs)
    frames, samples, records = sc.capacities(man, cfg)
    path = tmp_path / "s.zarr"
    sc.create_store(path, cfg, man, order, sc.Layout(n, ppt, 2, frames, samples, records))
    root = st.open_root(path, mode="r+")
    ids = list(st.read_column(root, "pair"))
    k = np.array([int(i[1:]) for i in ids])
    failed = k % 7 == 3
    root["samples"][:] = np.where(failed, 0, 100 + k)
    root["records"][:] = np.where(failed, 0, 2)
    timings = np.full((n, len(st.TIMINGS)), np.nan)
    timings[:, st.TIMINGS.index("optimise_s")] = 1.0
    timings[:, st.TIMINGS.index("started_at")] = np.arange(n) // 2  # batches of 2
    root["timings"][:] = timings
    root["error"][:] = np.array(["boom" if f else "" for f in failed], dtype=object)
    audio = np.zeros((n, root["audio"].shape[1]), np.float32)
    for i in range(n):
        audio[i, : 100 + k[i]] = k[i] / 1000.0
    root["audio"][:] = audio
    loss = np.full((n, len(root["term"][:]), root["loss"].shape[2]), np.nan, np.float32)
    loss[:, :, :2] = k[:, None, None]
    root["loss"][:] = loss
    # as the worker records them (a done pair without one reads as a lost checksum chunk)
    root["checksum"][:] = np.array(
        ["" if f else f"audio:{digest(audio[i, : 100 + k[i]])}" for i, f in enumerate(failed)],
        dtype=object)
    root["status"][:] = np.where(failed, st.FAILED, st.DONE).astype(np.int8)
    return path, k


def test_iter_pairs_streams_every_pair_with_its_data(tmp_path, monkeypatch):
    path, k = _fake_store(tmp_path)
    info = reader.store_info(path)
    assert (info.label, info.method, info.n_pairs, info.pairs_per_task) == ("s", "nst",
                                                                           30, 4)
    monkeypatch.setattr(reader, "READ_BYTES", 1)  # one shard per bulk read
    monkeypatch.setattr(st, "META_CHUNK", 8)  # metadata blocks of 8 pairs
    pairs = list(reader.iter_pairs(info))
    assert [p.index for p in pairs] == list(range(30))
    for p, kk in zip(pairs, k):
        assert p.pair_id == f"p{kk:03d}"
        assert p.content == tmp_path / "a.wav"
        assert (p.target is None) == (kk % 2 == 0)
        if kk % 7 == 3:
            assert (p.status, p.error, p.audio, p.losses) == ("failed", "boom", None, None)
            continue
        assert p.status == "done" and len(p.audio) == 100 + kk
        assert np.allclose(p.audio, kk / 1000.0) and p.losses[0, 1] == kk and p.records == 2
        assert p.timings["optimise_s"] == 1.0
        partner = [q for q in pairs if q.timings["started_at"] == p.timings["started_at"]
                   and q.index // 4 == p.index // 4 and q.status == "done"]
        assert p.batch_pairs == len(partner)


def test_iter_pairs_reads_only_the_pairs_asked_for(tmp_path, monkeypatch):
    path, k = _fake_store(tmp_path)
    info = reader.store_info(path)
    monkeypatch.setattr(reader, "READ_BYTES", 1)  # one shard per bulk read
    monkeypatch.setattr(st, "META_CHUNK", 8)
    reads = []
    real = reader.st.open_root

    def counting_root(*a, **kw):
        root = real(*a, **kw)
        audio = root["audio"]

        class Audio:
            chunks, shape = audio.chunks, audio.shape

            def __getitem__(self, key):
                reads.append(key[0])
                return audio[key]

        class Root:
            def __getitem__(self, name):
                return Audio() if name == "audio" else root[name]

            def __contains__(self, name):
                return name in root

        return Root()

    monkeypatch.setattr(reader.st, "open_root", counting_root)
    pairs = list(reader.iter_pairs(info, only=[1, 2, 25], with_losses=False))
    assert [p.index for p in pairs] == [1, 2, 25]
    assert all(p.audio is not None and p.losses is None for p in pairs)
    assert np.allclose(pairs[2].audio, k[25] / 1000.0)
    assert [(s.start, s.stop) for s in reads] == [(0, 4), (24, 28)]  # two windows of 30 pairs


def test_labels_from_manifest_columns_and_sidecars(tmp_path):
    m = tmp_path / "bench.csv"
    m.write_text("pair_id,content,style,style_label\na,x,y,Violin\nb,x,y,Cello\n")
    assert labels.read_labels(m) == {"a": {"style_label": "Violin"},
                                     "b": {"style_label": "Cello"}}
    (tmp_path / "labels.csv").write_text("pair_id,content_label,style_label\na,Flute,Viola\n")
    (tmp_path / "bench.labels.csv").write_text("pair_id,content_label\nb,Harp\n")
    extra = tmp_path / "extra.csv"
    extra.write_text("pair_id,style_label\nb,Oboe\n")
    assert labels.read_labels(m, [extra]) == {
        "a": {"content_label": "Flute", "style_label": "Viola"},
        "b": {"content_label": "Harp", "style_label": "Oboe"}}
    assert labels.read_labels(None) == {}
    assert labels.read_labels(tmp_path / "missing.csv") == {}
    blank = tmp_path / "blank.csv"  # a later file's blank cell never erases a label
    blank.write_text("pair_id,style_label,content_label\na,,Oboe\n")
    assert labels.read_labels(m, [blank])["a"] == {"content_label": "Oboe",
                                                   "style_label": "Viola"}


def test_method_names():
    assert reader.method_name({"method": "eq"}) == "eq"
    assert reader.method_name({"method": "nst", "model": {"name": "random"}}) == "nst"
    assert reader.method_name({"method": "nst", "model": {"name": "default"}}) == "nst-classifier"
    assert reader.method_name({"method": "nst", "model": {"name": "classifier"}}) \
        == "nst-classifier"
    assert reader.method_name({"method": "nst", "model": {"name": "/x/my.pt"}}) == "nst-my"


def test_labels_skip_comment_lines_wherever_pair_id_is(tmp_path):
    """A '# comment' line (the manifest reader allows them) left pair_id None: export and
    report crashed reading the labels."""
    from hpc_nst.batch.labels import read_labels

    m = tmp_path / "m.csv"
    m.write_text("content,style,pair_id,style_label\n# a comment\na.wav,b.wav,p1,harp\n")
    assert read_labels(m) == {"p1": {"style_label": "harp"}}
