"""``hpc-nst export --where EXPR``: keep only the pairs whose fields satisfy an expression.

A dataset builder keeps the outputs a judge hears as the style (``judge_top1 == 1``), those
close to their target (``lsd_db < 11``), one split (``split == 'train'``), or any mix:
comparisons (``== != < <= > >=``, ``in`` / ``not in`` a list), ``and`` / ``or`` / ``not``,
``+ - * /``, numbers, strings, ``True`` / ``False`` / ``None``, and the export's field names
(its ``export.json`` lists them: the store's fields, the manifest's metadata columns,
``loss_<term>`` and, with ``--report``, the report's per-pair metrics). Nothing else is
evaluated (no calls, attributes or indexing), so an expression cannot run code. A pair whose
field is missing or empty (a metric the report has no value for) does not match a comparison
with it, so it is left out.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Iterator
from typing import Any

from hpc_nst.errors import UsageError
from hpc_nst.export.items import REPORT_METRICS, ExportItem

_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt,
            ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge}
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
          ast.Div: operator.truediv}
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub,
            ast.Compare, ast.In, ast.NotIn, ast.BinOp, ast.Name, ast.Load, ast.Constant,
            ast.List, ast.Tuple, *_COMPARE, *_ARITH)


class _Missing:
    """A missing or empty field: no comparison with it holds."""


MISSING = _Missing()


class PairFilter:
    """A parsed ``--where`` expression; :meth:`keep` applies it to one item's fields."""

    def __init__(self, expression: str) -> None:
        self.expression = expression.strip()
        try:
            tree = ast.parse(self.expression, mode="eval")
        except SyntaxError as exc:
            raise UsageError(f"--where {expression!r}: not an expression ({exc.msg}); write "
                             "e.g. \"judge_top1 == 1 and lsd_db < 12\"") from exc
        for node in ast.walk(tree):
            if not isinstance(node, _ALLOWED):
                raise UsageError(f"--where {expression!r}: {type(node).__name__} is not "
                                 "allowed (comparisons, and/or/not, + - * /, names, numbers "
                                 "and strings only)")
        self._tree = tree
        self.names = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
                            - {"True", "False", "None"})

    def check_fields(self, fields: dict[str, Any], have_report: bool) -> None:
        """Refuse names that are not fields of the export, saying where a name comes from."""
        for name in self.names:
            if name in fields:
                continue
            hint = ("it is a report metric: add --report DIR (a folder written by hpc-nst "
                    "report on this store)" if name in REPORT_METRICS and not have_report
                    else f"the fields are: {', '.join(sorted(fields))}")
            raise UsageError(f"--where {self.expression!r}: {name!r} is not a field of this "
                             f"export; {hint}")

    def keep(self, fields: dict[str, Any]) -> bool:
        return bool(self._eval(self._tree.body, fields))

    def _eval(self, node: ast.AST, fields: dict[str, Any]) -> Any:  # noqa: PLR0911
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            value = fields.get(node.id, MISSING)
            return MISSING if value is None or value == "" else value
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self._eval(e, fields) for e in node.elts]
        if isinstance(node, ast.BoolOp):
            values = (self._eval(v, fields) for v in node.values)
            if isinstance(node.op, ast.And):
                return all(_truth(v) for v in values)
            return any(_truth(v) for v in values)
        if isinstance(node, ast.UnaryOp):
            value = self._eval(node.operand, fields)
            if isinstance(node.op, ast.Not):
                return not _truth(value)
            return MISSING if value is MISSING else -value
        if isinstance(node, ast.BinOp):
            a, b = self._eval(node.left, fields), self._eval(node.right, fields)
            if a is MISSING or b is MISSING:
                return MISSING
            return _apply(_ARITH[type(node.op)], a, b, self.expression)
        assert isinstance(node, ast.Compare)
        left = self._eval(node.left, fields)
        for op, right_node in zip(node.ops, node.comparators):
            right = self._eval(right_node, fields)
            if left is MISSING or right is MISSING:
                return False
            if isinstance(op, (ast.In, ast.NotIn)):
                found = left in right if isinstance(right, (list, str)) else False
                ok = found if isinstance(op, ast.In) else not found
            else:
                ok = _apply(_COMPARE[type(op)], left, right, self.expression)
            if not ok:
                return False
            left = right
        return True

    def apply(self, items: Iterator[ExportItem], have_report: bool,
              counts: dict[str, int]) -> Iterator[ExportItem]:
        """The items that match; ``counts["left_out"]`` counts the others."""
        counts.setdefault("left_out", 0)
        checked = False
        for item in items:
            if not checked:
                self.check_fields(item.fields, have_report)
                checked = True
            if self.keep(item.fields):
                yield item
            else:
                counts["left_out"] += 1


def _truth(value: Any) -> bool:
    return False if value is MISSING else bool(value)


def _apply(op: Any, a: Any, b: Any, expression: str) -> Any:
    try:
        return op(a, b)
    except (TypeError, ZeroDivisionError) as exc:
        raise UsageError(f"--where {expression!r}: cannot compute {a!r} and {b!r} ({exc}); "
                         "compare numbers with numbers and text with quoted text") from exc
