"""Load plan.yaml with line numbers, so every error says file:line: field: problem.

ruamel.yaml keeps each key's position; pydantic's error locations are mapped back to them.

A plan may come from anywhere (a pull request, a CI variable), so reading it is bounded: a
regular file of at most 1 MiB (a FIFO or /dev/zero would never end), at most
:data:`MAX_NODES` values once YAML aliases are expanded and :data:`MAX_DEPTH` levels of
nesting (a few hundred bytes of nested aliases expand to gigabytes); the schema bounds every
number (finite, within a physical range) and names each field that is not.
"""

from __future__ import annotations

import difflib
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError

from provision.errors import InputError
from provision.plan.schema import Loc, Plan, cross_check

Position = tuple[int, int]  # 1-based line, column
MAX_PLAN_BYTES = 1024 * 1024
MAX_NODES = 100_000  # values after alias expansion; the largest real plan has a few hundred
MAX_DEPTH = 32  # nesting levels; the schema's deepest field is 6 levels down


@dataclass
class SourceMap:
    """Where each key of a YAML document sits."""

    path: Path
    positions: dict[Loc, Position] = field(default_factory=dict)

    def locate(self, loc: Loc) -> Position:
        """Position of ``loc``, or of its closest ancestor that is in the file."""
        for n in range(len(loc), 0, -1):
            pos = self.positions.get(tuple(loc[:n]))
            if pos:
                return pos
        return (1, 1)

    def where(self, loc: Loc) -> str:
        line, col = self.locate(loc)
        return f"{self.path}:{line}:{col}"


@dataclass
class LoadedPlan:
    """A validated plan and where it came from (later stages report errors against it)."""

    plan: Plan
    source: SourceMap

    @property
    def path(self) -> Path:
        return self.source.path

    def error(self, loc: Loc, message: str) -> InputError:
        return InputError(f"{self.source.where(loc)}: {dotted(loc)}: {message}")

    def resolve_path(self, relative: str) -> Path:
        """A path written in the plan, taken relative to the plan file."""
        p = Path(relative).expanduser()
        return p if p.is_absolute() else (self.path.parent / p)


def dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


class _Budget:
    """Counts the values :func:`_plain` produces, so an alias bomb ends in an error."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.left = MAX_NODES

    def spend(self, loc: Loc, positions: dict[Loc, Position]) -> None:
        self.left -= 1
        if self.left < 0:
            raise InputError(f"{_where(self.path, loc, positions)}: the plan expands to more "
                             f"than {MAX_NODES:,} values (YAML aliases repeating large "
                             "parts?); a plan is a few hundred values")
        if len(loc) > MAX_DEPTH:
            raise InputError(f"{_where(self.path, loc, positions)}: nested more than "
                             f"{MAX_DEPTH} levels deep (a recursive YAML alias?)")


def _where(path: Path, loc: Loc, positions: dict[Loc, Position]) -> str:
    line, col = SourceMap(path, positions).locate(loc)
    return f"{path}:{line}:{col}"


def _position(node: Any, key: Any, item: bool) -> Position | None:
    try:
        line, col = node.lc.item(key) if item else node.lc.key(key)
        return (line + 1, col + 1)
    except (AttributeError, KeyError, IndexError, TypeError):
        return None  # a node ruamel keeps no position for (e.g. inside !!omap)


def _plain(node: Any, loc: Loc, positions: dict[Loc, Position], budget: _Budget) -> Any:
    """ruamel's round-trip nodes → plain Python (dicts, lists, str, int, float, bool, None),
    recording positions on the way; other YAML types (!!omap, !!set, timestamps, binary)
    become the nearest plain type so the schema reports them as usual."""
    budget.spend(loc, positions)
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            pos = _position(node, key, item=False)
            if pos:
                positions[(*loc, str(key))] = pos
            out[str(key)] = _plain(value, (*loc, str(key)), positions, budget)
        return out
    if isinstance(node, list | tuple | set | frozenset):
        items = []
        for i, value in enumerate(node):
            pos = _position(node, i, item=True)
            if pos:
                positions[(*loc, i)] = pos
            items.append(_plain(value, (*loc, i), positions, budget))
        return items
    if isinstance(node, str):
        return str(node)
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)  # the schema refuses NaN and infinities, naming each field
    if node is None:
        return None
    return str(node)


def read_yaml(path: Path) -> tuple[Any, SourceMap]:
    """Parse a YAML file into plain data plus its source map; syntax errors become InputError."""
    text = _read_bounded(path)
    source = SourceMap(path)
    try:
        doc = YAML(typ="rt", pure=True).load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "malformed YAML"
        raise InputError(f"{where}: YAML syntax error: {problem}") from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be a plan") from None
    except Exception as exc:  # ruamel raises a few unmarked errors (e.g. bad encodings)
        raise InputError(f"{path}: YAML syntax error: {exc}") from None
    return _plain(doc, (), source.positions, _Budget(path)), source


def _read_bounded(path: Path) -> str:
    """The file's text, if it is a regular file of at most MAX_PLAN_BYTES of UTF-8."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise InputError(f"{path}: {kind}; a plan is a YAML file")
        if info.st_size > MAX_PLAN_BYTES:
            raise InputError(f"{path}: {info.st_size:,} bytes; a plan is at most "
                             f"{MAX_PLAN_BYTES:,} bytes")
        with path.open("rb") as fh:
            data = fh.read(MAX_PLAN_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_PLAN_BYTES:
        raise InputError(f"{path}: a plan is at most {MAX_PLAN_BYTES:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model class that owns the field at ``loc`` (for 'did you mean')."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        info = getattr(current, "model_fields", {}).get(part)
        if info is None:
            return None
        ann = info.annotation
        args = getattr(ann, "__args__", ()) or (ann,)
        current = next((a for a in args if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


_PHRASES = {
    "int_parsing": "expected a whole number",
    "int_type": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "finite_number": "expected a finite number",
    "int_parsing_size": "number too large",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected text",
    "list_type": "expected a list",
    "dict_type": "expected a mapping (key: value lines)",
    "model_type": "expected a mapping (key: value lines)",
    "model_attributes_type": "expected a mapping (key: value lines)",
}


def _message(err: dict, model: type[BaseModel]) -> tuple[Loc, str]:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        owner = _model_at(model, loc[:-1])
        allowed = list(owner.model_fields) if owner else []
        hint = ""
        if allowed:
            hits = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {hits[0]!r}?" if hits else ""
            hint += f" (allowed here: {', '.join(allowed)})"
        return loc, f"unknown key{hint}"
    if kind == "missing":
        return loc, "required field is missing"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        choices = [c.strip(" '") for c in expected.replace(" or ", ",").split(",") if c.strip()]
        hint = ""
        if isinstance(value, str):
            hits = difflib.get_close_matches(value, choices, n=1, cutoff=0.5)
            hint = f"; did you mean {hits[0]!r}?" if hits else ""
        return loc, f"expected one of {', '.join(choices)}; got {value!r}{hint}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        ctx = err.get("ctx", {})
        bound = {"greater_than": "greater than {gt}", "greater_than_equal": "at least {ge}",
                 "less_than": "less than {lt}", "less_than_equal": "at most {le}"}[kind]
        nice = {k: (f"{v:g}" if isinstance(v, int | float) else v) for k, v in ctx.items()}
        return loc, f"must be {bound.format(**nice)}; got {value!r}"
    if kind == "too_short":
        return loc, "must not be empty"
    if kind == "string_pattern_mismatch":
        return loc, (
            f"{value!r} is not a valid name: use lower-case letters, digits and dashes, "
            "starting and ending with a letter or digit, at most 40 characters"
        )
    if kind == "value_error":
        return loc, str(err.get("ctx", {}).get("error", err["msg"]))
    phrase = _PHRASES.get(kind)
    if phrase:
        return loc, f"{phrase}; got {value!r}"
    return loc, err["msg"]


def validate(data: Any, source: SourceMap) -> Plan:
    """Validate parsed YAML as a Plan, raising one InputError that lists every problem."""
    if data is None:
        raise InputError(f"{source.path}:1:1: the file is empty; a plan needs at least `name`")
    if not isinstance(data, dict):
        raise InputError(
            f"{source.path}:1:1: a plan is a mapping of keys (name:, workload:, ...), "
            f"not a {type(data).__name__}"
        )
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        errors = _without_union_noise(exc.errors(include_url=False), data)
        located = [_message(err, Plan) for err in errors]
        raise InputError(f"{source.path}: invalid plan", _render(located, source)) from None
    problems = cross_check(plan)
    if problems:
        raise InputError(f"{source.path}: invalid plan", _render(problems, source))
    return plan


def _union_tag(loc: Loc, data: Any) -> int | None:
    """Index of the first element of ``loc`` that names a union member (``constrained-int``,
    ``list[LocalNode]``) rather than a key of the data: one where the data is no mapping."""
    node = data
    for i, part in enumerate(loc):
        if isinstance(part, str) and not isinstance(node, dict):
            return i
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return None


def _without_union_noise(errors: list[dict], data: Any) -> list[dict]:
    """A value of a union field (``nodes: 3`` or a list of nodes) fails every member; only the
    member whose shape the value has is worth reporting. Drops the members that merely
    rejected the value's type when another member got further, and the member names."""
    tagged: dict[Loc, list[tuple[int, dict]]] = {}
    plain: list[dict] = []
    for err in errors:
        loc = tuple(err["loc"])
        i = _union_tag(loc, data)
        if i is None:
            plain.append(err)
        else:
            tagged.setdefault(loc[:i], []).append((i, err))
    for members in tagged.values():
        deeper = [(i, e) for i, e in members if len(e["loc"]) > i + 1 or
                  not str(e["type"]).endswith(("_type", "_parsing"))]
        for i, err in deeper or members[:1]:
            plain.append({**err, "loc": (*err["loc"][:i], *err["loc"][i + 1:])})
    return plain


def _render(problems: list[tuple[Loc, str]], source: SourceMap) -> list[str]:
    """'file:line:col: field: message' lines in file order."""
    ordered = sorted(problems, key=lambda p: source.locate(p[0]))
    return [f"{source.where(loc)}: {dotted(loc)}: {msg}" for loc, msg in ordered]


def load_plan(path: str | Path) -> LoadedPlan:
    """Read and validate a plan.yaml. Raises InputError (exit 2) naming file, line and field."""
    path = Path(path)
    data, source = read_yaml(path)
    return LoadedPlan(validate(data, source), source)
