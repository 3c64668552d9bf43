"""benchmarks/quality_dev.py: the dev / test split names pairs of the tuned benchmark only, so
held-out pairs can never be scored as dev ones; a stale cached dev set is refused."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from tests.benchmarks.loader import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("quality_dev")


def manifest(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"pair_id": ids, "content": "c", "style": "s", "target": "t"})


def test_the_split_is_the_tuned_benchmarks_own(bench):
    tuned = pd.read_csv(bench.TUNED / "manifest.csv")
    dev = bench.split_pairs(bench.TUNED, tuned, "dev")
    test = bench.split_pairs(bench.TUNED, tuned, "test")
    assert sorted(dev.pair_id) == sorted(bench.DEV) and len(dev) + len(test) == len(tuned)
    assert len(bench.split_pairs(bench.TUNED, tuned, "all")) == len(tuned)


@pytest.mark.parametrize("split", ["dev", "test"])
def test_another_set_with_the_same_pair_ids_has_no_split(bench, split):
    timgm = bench.ROOT / "manifests" / "triplets-timgm"
    rows = pd.read_csv(timgm / "manifest.csv")
    assert set(bench.DEV) & set(rows.pair_id)  # the trap: the same names, other pairs
    with pytest.raises(SystemExit, match="only manifests/triplets has a dev / test split"):
        bench.split_pairs(timgm, rows, split)
    assert len(bench.split_pairs(timgm, rows, "all")) == len(rows)


def test_an_empty_selection_is_refused_by_name(bench, tmp_path):
    with pytest.raises(SystemExit, match=f"{tmp_path}: no pair in split 'all'"):
        bench.split_pairs(tmp_path, manifest([]), "all")


def test_a_cached_dev_set_rendered_otherwise_is_refused(bench, tmp_path):
    name, count, seconds, seed = bench.DEV_SETS[0]
    folder = tmp_path / name
    folder.mkdir()
    manifest([f"p{i}" for i in range(count)]).to_csv(folder / "manifest.csv", index=False)
    (folder / bench.SUITE_RECORD).write_text(json.dumps(
        {"count": count, "seconds": seconds, "seed": seed + 1}))
    with pytest.raises(SystemExit, match="delete the folder"):
        bench.dev_suite(tmp_path)
    (folder / bench.SUITE_RECORD).unlink()  # an older cache: its size and length checked
    pd.DataFrame({"pair_id": [f"p{i}" for i in range(count - 1)], "seconds": seconds}).to_csv(
        folder / "labels.csv", index=False)
    with pytest.raises(SystemExit, match=f"{count - 1} pairs, not the suite's {name}"):
        bench.dev_suite(tmp_path)
