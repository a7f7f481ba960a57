"""A mission's prose as templates of its own data, so a story cannot contradict its numbers.

The story, each Lock's text and each reflection prompt name the mission's numbers by their
dotted path in braces, with an optional format spec (Python's format mini-language):

    {limits.global_batch:,}                             -> 4,096
    {scenario.system.background_network_load:.0%}       -> 95%
    {1 - scenario.system.background_network_load:.0%}  -> 5%
    {limits.devices / 8:,.0f}                           -> 128

A placeholder is a path into the mission file (``limits``, ``scenario``, ``naive``,
``objective``, ...) or a small arithmetic expression of paths and numbers (+, -, *, /, //,
parentheses). A variant or an edited limit therefore changes the prose with the data
(:meth:`trainwall.challenges.mission.Mission.rendered`); a handout carries the rendered
text. Literal braces are not allowed in prose.
"""

from __future__ import annotations

import ast
import operator
import string

_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv}


class ProseError(ValueError):
    """A placeholder that cannot be rendered: ``placeholder``, what is wrong, and the prose
    field it is in (``story``, ``lock.0.text``, ``reflection.2``) once known."""

    def __init__(self, placeholder: str, reason: str, field: str = ""):
        super().__init__(f"{field + ': ' if field else ''}{{{placeholder}}}: {reason}")
        self.placeholder = placeholder
        self.reason = reason
        self.field = field


def rendered_fields(data: dict) -> dict:
    """A mission file's prose fields rendered from its own ``data``: ``title``, ``story``,
    ``reflection`` and each Lock's ``text`` (as a list in Lock order, under ``lock_texts``)."""
    fields = [("title", data.get("title", "")), ("story", data.get("story", ""))]
    fields += [(f"lock.{i}.text", q.get("text", "")) for i, q in enumerate(data.get("lock") or [])]
    fields += [(f"reflection.{i}", p) for i, p in enumerate(data.get("reflection") or [])]
    out: dict = {"lock_texts": [], "reflection": []}
    for field, template in fields:
        try:
            text = render(template, data)
        except ProseError as exc:
            raise ProseError(exc.placeholder, exc.reason, field) from None
        if field.startswith("lock."):
            out["lock_texts"].append(text)
        elif field.startswith("reflection."):
            out["reflection"].append(text)
        else:
            out[field] = text
    return out


def render_mission_data(data: dict) -> dict:
    """A copy of mission-file ``data`` with its prose rendered: what a handout carries."""
    out = rendered_fields(data)
    return {**data, "title": out["title"], "story": out["story"], "reflection": out["reflection"],
            "lock": [{**q, "text": t} for q, t in zip(data.get("lock") or [], out["lock_texts"])]}


def render(template: str, data: dict) -> str:
    """``template`` with every placeholder replaced by its value in ``data`` (ProseError if one cannot be)."""
    pieces = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ProseError(template.strip()[:60], f"unbalanced braces ({exc})") from None
    for literal, field, spec, conversion in parsed:
        if "{" in literal or "}" in literal:
            raise ProseError(literal.strip()[:60], "literal braces are not allowed in prose")
        pieces.append(literal)
        if field is None:
            continue
        shown = field + (f":{spec}" if spec else "")
        if conversion is not None or "{" in (spec or ""):
            raise ProseError(shown, "a placeholder is a path or an arithmetic expression with an optional format spec")
        value = _value(field.strip(), data, shown)
        try:
            pieces.append(format(value, spec or ""))
        except (ValueError, TypeError) as exc:
            raise ProseError(shown, f"cannot format {value!r} with {spec!r} ({exc})") from None
    return "".join(pieces)


def placeholders(template: str) -> list[str]:
    """The placeholders' expressions of ``template``, in order (for tests and linting)."""
    return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]


def _value(expression: str, data: dict, shown: str) -> float | int | str:
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ProseError(shown, "not a path or an arithmetic expression") from None
    return _evaluate(tree.body, data, shown)


def _evaluate(node: ast.AST, data: dict, shown: str):
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, (ast.Name, ast.Attribute)):
        return _lookup(_dotted(node, shown), data, shown)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_number(_evaluate(node.operand, data, shown), shown)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left = _number(_evaluate(node.left, data, shown), shown)
        right = _number(_evaluate(node.right, data, shown), shown)
        try:
            return _OPERATORS[type(node.op)](left, right)
        except ZeroDivisionError:
            raise ProseError(shown, "divides by zero") from None
    raise ProseError(shown, "only paths, numbers and + - * / // are allowed")


def _dotted(node: ast.AST, shown: str) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value, shown)}.{node.attr}"
    raise ProseError(shown, "only paths, numbers and + - * / // are allowed")


def _lookup(path: str, data: dict, shown: str):
    value = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise ProseError(shown, f"the mission sets no {path}")
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ProseError(shown, f"{path} is {type(value).__name__}, not a number or a name")
    return value


def _number(value, shown: str) -> float | int:
    if isinstance(value, str):
        raise ProseError(shown, f"arithmetic on a name ({value!r})")
    return value
