"""``hpc-nst export --where EXPR``: keep only the pairs whose fields satisfy an expression.

A dataset builder keeps the outputs a judge hears as the style (``judge_top1 == 1``), those
close to their target (``lsd_db < 11``), one split (``split == 'train'``), or any mix:
comparisons (``== != < <= > >=``, ``in`` / ``not in`` a list), ``and`` / ``or`` / ``not``,
``+ - * /`` (dividing by zero gives unknown), numbers, strings, ``True`` / ``False`` /
``None``, and the export's field names (a name that is not a word, such as a manifest
column ``split-name``, in backticks: ```split-name` == 'train'``)
(its ``.export.json`` lists them: the store's fields, the manifest's metadata columns,
``loss_<term>`` and, with ``--report``, the report's per-pair metrics). Nothing else is
evaluated (no calls, attributes or indexing), arithmetic takes numbers only and an expression
at most MAX_LENGTH characters, so an expression can neither run code nor exhaust memory. A
field that is missing or empty (a metric the report has no value for) makes every comparison
with it unknown, and ``not`` of unknown is unknown (as in SQL): a pair is kept only where the
expression is true, so such a pair is left out unless the rest decides it (``a or b`` with
``b`` true); ``a == None`` (``!= None``, ``a in [..., None]``) asks whether ``a`` has no
value (has one). The manifest's metadata columns are text: compare them with quoted text.
"""

from __future__ import annotations

import ast
import itertools
import logging
import operator
import re
from collections.abc import Iterator
from typing import Any

from hpc_nst.errors import UsageError
from hpc_nst.export.items import ExportItem, report_fields

log = logging.getLogger(__name__)

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
            ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
          ast.Div: operator.truediv}
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
            ast.Compare, ast.In, ast.NotIn, ast.BinOp, ast.Name, ast.Load, ast.Constant,
            ast.List, ast.Tuple, *_COMPARE, *_ARITH)


MAX_LENGTH = 1000
#: A quoted string (left as it is) or a backticked name (group 2).
_BACKTICKED = re.compile(r"""('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|`([^`]+)`""")


class _Missing:
    """A missing or empty field: no comparison with it holds."""


MISSING = _Missing()


class PairFilter:
    """A parsed ``--where`` expression; :meth:`keep` applies it to one item's fields."""

    def __init__(self, expression: str) -> None:
        self.expression = expression.strip()
        if len(self.expression) > MAX_LENGTH:
            raise UsageError(f"--where: an expression of {len(self.expression)} characters; at "
                             f"most {MAX_LENGTH}")
        # `a field-name` in backticks: a name that is no identifier (a manifest column such
        # as split-name or "fold 1"), parsed as a placeholder that stands for it
        self._alias: dict[str, str] = {}

        def quoted(match: re.Match[str]) -> str:
            if match.group(2) is None:  # a string literal: a backtick in it is text
                return match.group(1)
            alias = f"_field_{len(self._alias)}_"
            self._alias[alias] = match.group(2)
            return alias

        try:
            tree = ast.parse(_BACKTICKED.sub(quoted, self.expression), mode="eval")
        except SyntaxError as exc:
            raise UsageError(f"--where {expression!r}: not an expression ({exc.msg}); write "
                             "e.g. \"judge_top1 == 1 and lsd_db < 12\"") from exc
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED):
                raise UsageError(f"--where {expression!r}: {type(node).__name__} is not "
                                 "allowed (comparisons, and/or/not, + - * /, names, numbers "
                                 "and strings only)")
        self._tree = tree
        self.names = sorted({self._alias.get(n.id, n.id) for n in ast.walk(tree)
                             if isinstance(n, ast.Name)} - {"True", "False", "None"})

    def check_fields(self, fields: dict[str, Any], have_report: bool) -> None:
        """Refuse names that are not fields of the export, saying where a name comes from."""
        for name in self.names:
            if name in fields:
                continue
            odd = [f for f in fields if not f.isidentifier() and name in re.split(r"\W", f)]
            hint = ("it is a report metric: add --report DIR (a folder written by hpc-nst "
                    "report on this store)" if not have_report and name in report_fields()
                    else f"a field name that is not a word goes in backticks: `{odd[0]}`"
                    if odd else f"the fields are: {', '.join(sorted(fields))}")
            raise UsageError(f"--where {self.expression!r}: {name!r} is not a field of this "
                             f"export; {hint}")

    def keep(self, fields: dict[str, Any]) -> bool:
        """True where the expression is true for ``fields`` (not where it is unknown)."""
        value = self._eval(self._tree.body, fields)
        return value is not MISSING and bool(value)

    def _eval(self, node: ast.AST, fields: dict[str, Any]) -> Any:  # noqa: PLR0911
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            value = fields.get(self._alias.get(node.id, node.id), MISSING)
            return MISSING if value is None or value == "" else value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self._eval(e, fields) for e in node.elts]
        if isinstance(node, ast.BoolOp):  # three-valued: unknown unless decided without it
            values = [self._eval(v, fields) for v in node.values]
            decisive = isinstance(node.op, ast.Or)  # a true value decides "or", false "and"
            if any(v is not MISSING and bool(v) is decisive for v in values):
                return decisive
            return MISSING if any(v is MISSING for v in values) else not decisive
        if isinstance(node, ast.UnaryOp):
            value = self._eval(node.operand, fields)
            if value is MISSING:
                return MISSING
            if isinstance(node.op, ast.Not):
                return not value
            return -self._number(value)
        if isinstance(node, ast.BinOp):
            a, b = self._eval(node.left, fields), self._eval(node.right, fields)
            if a is MISSING or b is MISSING:
                return MISSING
            x, y = self._number(a), self._number(b)
            if isinstance(node.op, ast.Div) and y == 0:
                return MISSING  # x / 0 is unknown (as in SQL), not an error mid-export
            return _apply(_ARITH[type(node.op)], x, y, self.expression)
        assert isinstance(node, ast.Compare)
        left, result = self._eval(node.left, fields), True
        for op, right_node in zip(node.ops, node.comparators):
            right = self._eval(right_node, fields)
            if isinstance(op, (ast.Eq, ast.NotEq)) and (left is None or right is None):
                # "x == None": x has no value (SQL's IS NULL), the one test that sees it
                other = right if left is None else left
                ok: Any = (other is MISSING or other is None) is isinstance(op, ast.Eq)
            elif (isinstance(op, (ast.In, ast.NotIn)) and left is MISSING
                  and isinstance(right, list) and None in right):  # "x in ['a', None]"
                ok = isinstance(op, ast.In)
            elif left is MISSING or right is MISSING:
                ok = MISSING
            elif isinstance(op, (ast.In, ast.NotIn)):
                if not isinstance(right, (list, str)):
                    raise UsageError(f"--where {self.expression!r}: 'in' needs a list "
                                     f"(['a', 'b']) or text on its right, not {right!r}")
                ok = (left in right) is isinstance(op, ast.In)
            else:
                if isinstance(op, (ast.Eq, ast.NotEq)) and (
                        (isinstance(left, str) and isinstance(right, (int, float)))
                        or (isinstance(right, str) and isinstance(left, (int, float)))):
                    raise UsageError(  # "fold == 0" on a text column would match nothing
                        f"--where {self.expression!r}: {left!r} and {right!r} are text and a "
                        "number, never equal: write the value as the field holds it (a "
                        "manifest's metadata columns are text: quoted, fold == '0'; a "
                        "number field unquoted, seed == 0)")
                ok = _apply(_COMPARE[type(op)], left, right, self.expression)
            if ok is not MISSING and not ok:
                return False
            if ok is MISSING:
                result = MISSING
            left = right
        return result

    def _number(self, value: Any) -> float:
        if isinstance(value, (int, float)):  # (bool is an int)
            return value
        raise UsageError(f"--where {self.expression!r}: arithmetic takes numbers, not "
                         f"{value!r} (the manifest's metadata columns are text)")

    def apply(self, items: Iterator[ExportItem], have_report: bool,
              counts: dict[str, int]) -> Iterator[ExportItem]:
        """The items that match; ``counts["left_out"]`` counts the others. The field names
        are checked against the first item now, before the caller writes anything."""
        counts.setdefault("left_out", 0)
        first = next(items, None)
        if first is None:
            return iter(())
        self.check_fields(first.fields, have_report)
        return self._matching(itertools.chain([first], items), counts)

    def _matching(self, items: Iterator[ExportItem],
                  counts: dict[str, int]) -> Iterator[ExportItem]:
        """Until the first pair is kept (nothing written yet) an expression that cannot be
        computed is an error; after it, that pair is left out and counted (the error said
        once at the end): an export must not stop half-written."""
        started = False
        failed: list[str] = []
        first_error = ""
        for item in items:
            try:
                kept = self.keep(item.fields)
            except UsageError as exc:
                if not started:
                    raise
                failed.append(item.pair_id)
                first_error = first_error or str(exc)
                kept = False
            if kept:
                started = True
                yield item
            else:
                counts["left_out"] += 1
        if failed:
            log.warning("--where could not be computed for %d pair(s), left out (%s%s): %s",
                        len(failed), ", ".join(failed[:10]),
                        " ..." if len(failed) > 10 else "", first_error)


def _apply(op: Any, a: Any, b: Any, expression: str) -> Any:
    try:
        return op(a, b)
    except (TypeError, ZeroDivisionError, OverflowError) as exc:
        raise UsageError(f"--where {expression!r}: cannot compute {a!r} and {b!r} ({exc}); "
                         "compare numbers with numbers and text with quoted text (the "
                         "manifest's metadata columns are text)") from exc
