"""``hpc-nst export --where``: the expression language, what it refuses and what it keeps."""

from __future__ import annotations

import pytest

from hpc_nst.errors import UsageError
from hpc_nst.export.select import PairFilter

FIELDS = {"pair_id": "ab", "style_label": "harp", "judge_top1": 1.0, "judge_prob": 0.62,
          "lsd_db": 11.5, "seed": 3, "split": "train", "loss_total": None, "note": ""}


@pytest.mark.parametrize("expression, kept", [
    ("judge_top1 == 1", True),
    ("judge_top1 == 1 and lsd_db < 11", False),
    ("judge_prob >= 0.5 or lsd_db < 11", True),
    ("not judge_top1", False),
    ("style_label in ['harp', 'violin'] and split != 'test'", True),
    ("style_label not in ('harp',)", False),
    ("10 < lsd_db <= 12", True),
    ("10 < lsd_db <= 11", False),
    ("lsd_db - 2 * seed > 5", True),
    ("-lsd_db < -20", False),
    ("loss_total < 1", False),  # missing: the comparison is unknown, the pair left out
    ("not loss_total < 1", False),  # and so is its negation (as in SQL)
    ("not loss_total", False),
    ("loss_total < 1 or judge_top1 == 1", True),  # decided without it
    ("loss_total < 1 and judge_top1 == 0", False),
    ("not (loss_total < 1 and judge_top1 == 0)", True),
    ("loss_total == None", True),  # no value: the one test that sees it (SQL's IS NULL)
    ("loss_total != None", False),
    ("note == None and lsd_db != None", True),  # empty text counts as no value
    ("None == judge_top1", False),
    ("loss_total in [None, 1]", True),  # ("in" a list holding None: missing matches too)
    ("loss_total not in [None]", False),
    ("style_label in ['harp', None]", True),
    ("judge_prob in [None]", False),
    ("1 < loss_total < 2", False),
    ("5 < seed < loss_total", False),  # false before the unknown part
    ("note == ''", False),  # empty text counts as missing
    ("True", True),
])
def test_expressions_select_as_written(expression, kept):
    assert PairFilter(expression).keep(FIELDS) is kept


@pytest.mark.parametrize("expression, says", [
    ("judge_top1 ==", "not an expression"),
    ("__import__('os').system('true')", "Call is not allowed"),
    ("style_label.upper() == 'HARP'", "is not allowed"),
    ("pair_id[0] == 'a'", "Subscript is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
])
def test_anything_but_plain_comparisons_is_refused_before_any_pair_is_read(expression, says):
    with pytest.raises(UsageError, match=says):
        PairFilter(expression)


def test_an_unknown_name_is_refused_with_where_it_comes_from():
    f = PairFilter("judge_top1 == 1 and bandwidth_ratio > 1")
    with pytest.raises(UsageError, match="'bandwidth_ratio' is not a field.*add --report DIR"):
        f.check_fields({"pair_id": "x", "judge_top1": 1.0}, have_report=False)
    with pytest.raises(UsageError, match="'lsd' is not a field.*the fields are: .*lsd_db"):
        PairFilter("lsd < 3").check_fields(FIELDS, have_report=True)
    PairFilter("lsd_db < 3 and style_label == 'x'").check_fields(FIELDS, have_report=True)


def test_field_names_that_are_not_words_go_in_backticks():
    """A manifest column such as split-name could not be used at all ("'name' is not a
    field", while the field list named split-name)."""
    fields = {**FIELDS, "split-name": "train", "fold 1": "a"}
    with pytest.raises(UsageError, match="a field name that is not a word goes in backticks: "
                                         "`split-name`"):
        PairFilter("split-name == 'train'").check_fields(fields, have_report=True)
    f = PairFilter("`split-name` == 'train' and `fold 1` in ['a'] and seed == 3")
    f.check_fields(fields, have_report=True)
    assert f.keep(fields) is True
    assert PairFilter("`fold 1` == 'b'").keep(fields) is False
    odd = {"split-name": "tr`ai`n"}
    assert PairFilter("`split-name` == 'tr`ai`n'").keep(odd) is True  # text stays text
    assert PairFilter("`split-name` in ['x`y', \"train\"]").keep(fields) is True
    with pytest.raises(UsageError, match="'split name' is not a field"):
        PairFilter("`split name` == 'x'").check_fields(fields, have_report=True)


def test_mixing_text_and_numbers_is_a_clear_error():
    with pytest.raises(UsageError, match="cannot compute 'harp' and 1.*metadata columns are text"):
        PairFilter("style_label > 1").keep(FIELDS)
    with pytest.raises(UsageError, match="'in' needs a list"):
        PairFilter("seed in 5").keep(FIELDS)
    # equality of text and a number is never true: refused, not an empty selection
    for expression in ("split == 0", "0 != split", "style_label == 1.5"):
        with pytest.raises(UsageError, match="text and a number, never equal: write the value "
                                             "as the field holds it"):
            PairFilter(expression).keep(FIELDS)
    with pytest.raises(UsageError, match=r"a number field unquoted, seed == 0"):
        PairFilter("seed == '3'").keep(FIELDS)  # a number field given text
    assert PairFilter("split == 'train'").keep(FIELDS) and PairFilter("seed == 3").keep(FIELDS)


@pytest.mark.parametrize("expression", [
    "style_label * 1000000000 == 'x'",  # would allocate 4 GB per pair
    "['a'] * 1000000000 == []",
    "-split == 'x'",
])
def test_arithmetic_takes_numbers_only(expression):
    with pytest.raises(UsageError, match="arithmetic takes numbers"):
        PairFilter(expression).keep(FIELDS)


def test_overflow_and_very_long_expressions_are_refused():
    with pytest.raises(UsageError, match="cannot compute"):
        PairFilter("1" + "0" * 400 + " / 3.0 > 1").keep(FIELDS)  # int too large for a float
    assert PairFilter("1e308 * 1e308 / 0 > 1").keep(FIELDS) is False  # inf / 0: unknown
    with pytest.raises(UsageError, match="at most 1000"):
        PairFilter(" or ".join(["seed == 1"] * 200))


def test_a_division_by_zero_is_unknown_not_an_error():
    """``seed / judge_top1`` with a judge verdict of 0 stopped the export mid-way."""
    fields = {**FIELDS, "judge_top1": 0.0}
    assert PairFilter("seed / judge_top1 >= 0").keep(fields) is False
    assert PairFilter("seed / judge_top1 >= 0 or pair_id == 'ab'").keep(fields) is True


def test_an_error_after_the_first_kept_pair_leaves_that_pair_out_and_says_so(caplog):
    """An expression failing on a later pair (a text field where a number is needed) stopped
    the export half-written (the card "complete": false, the folder refused to another
    format); before any pair is kept it is still an error, as nothing is written then."""
    from types import SimpleNamespace

    items = [SimpleNamespace(pair_id=p, fields={"pair_id": p, "gain": g})
             for p, g in (("bc", ""), ("ab", ""), ("ca", "0.5"), ("cb", ""))]
    f = PairFilter("pair_id in ['ab', 'cb'] or gain * 2 > 0")
    counts: dict[str, int] = {}
    kept = [i.pair_id for i in f.apply(iter(items), False, counts)]
    assert kept == ["ab", "cb"] and counts["left_out"] == 2
    assert "could not be computed for 1 pair(s), left out (ca)" in caplog.text
    assert "arithmetic takes numbers" in caplog.text
    with pytest.raises(UsageError, match="arithmetic takes numbers"):
        list(PairFilter("pair_id in ['cb'] or gain * 2 > 0").apply(iter(items), False, {}))
