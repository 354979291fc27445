"""Reading a recipe: YAML → ``--set`` overrides → validation with dotted-path errors."""
from __future__ import annotations

import copy
import re
import types
import typing
from pathlib import Path
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from compress.errors import InputError, RecipeError
from compress.recipe.schema import STAGE_NAMES, Recipe
from compress.registry import did_you_mean

_INDEX_RE = re.compile(r"^([A-Za-z_][\w-]*)((?:\[\d+\])*)$")
_BOUNDS = {"greater_than": ("gt", ">"), "greater_than_equal": ("ge", ">="),
           "less_than": ("lt", "<"), "less_than_equal": ("le", "<=")}


def load_recipe(source: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
                name: str | None = None) -> Recipe:
    """Read, override and validate a recipe; raise :class:`RecipeError` listing every problem."""
    if isinstance(source, dict):
        raw = copy.deepcopy(source)
        name = name or "<recipe>"
    else:
        name, raw = name or str(source), read_yaml(Path(source))
    problems: list[str] = []
    for item in overrides:
        try:
            apply_override(raw, item)
        except ValueError as exc:
            problems.append(f"--set {item}: {exc}")
    if problems:
        raise RecipeError(name, problems)
    return validate(raw, name)


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping, turning I/O and syntax errors into :class:`InputError`."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read recipe {path}: {exc.strerror}",
                         "check the path, or run `modelzip init` to write a starter recipe") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a recipe is a YAML mapping (model:, data:, pipeline: …), "
                         f"got {type(raw).__name__}")
    return raw


def validate(raw: dict[str, Any], name: str = "<recipe>") -> Recipe:
    try:
        return Recipe.model_validate(raw)
    except ValidationError as exc:
        raise RecipeError(name, [format_error(e) for e in exc.errors()]) from None


def format_error(err: Any) -> str:
    """One line per pydantic error: ``dotted.path[1].key: what is wrong, got X``."""
    loc, kind, got = err["loc"], err["type"], err.get("input")
    path = format_loc(loc)
    if kind == "extra_forbidden":
        fields = fields_at(Recipe, loc[:-1])
        return f"{path}: unknown key{did_you_mean(str(loc[-1]), fields) if fields else ''}"
    if kind == "missing":
        return f"{path}: required key is missing"
    if kind in _BOUNDS:
        key, sym = _BOUNDS[kind]
        return f"{path}: must be {sym} {err['ctx'][key]}, got {got!r}"
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", err["ctx"]["expected"])
        return f"{path}: '{got}' is not allowed{did_you_mean(str(got), choices)}"
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "value_error":
        return f"{path}: {msg}"
    return f"{path}: {msg[0].lower()}{msg[1:]}, got {got!r}"


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<recipe>"


def fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names of the schema model found at ``loc`` (empty if none)."""
    tp: Any = model
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(part, int):
            tp = get_args(tp)[0] if get_origin(tp) is list else None
        elif isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
            tp = tp.model_fields[part].annotation
        else:
            return []
    tp = _unwrap(tp)
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _unwrap(tp: Any) -> Any:
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else tp
    if get_origin(tp) is typing.Annotated:
        return get_args(tp)[0]
    return tp


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``dotted.key=value`` override in place; the value is parsed as YAML.

    A first key naming a stage (``train.epochs=3``) applies to every stage of that kind.
    """
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ValueError("expected KEY=VALUE, e.g. train.epochs=3")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    parts = _split_key(key.strip())
    _normalize_stages(raw)
    if parts[0] in STAGE_NAMES:
        stages = [s for s in raw.get("pipeline") or [] if isinstance(s, dict) and parts[0] in s]
        if not stages:
            raise ValueError(f"the pipeline has no '{parts[0]}' stage to override")
        for stage in stages:
            _set_path(stage, parts, value)
        return
    _set_path(raw, parts, value)


def _normalize_stages(raw: dict[str, Any]) -> None:
    """Spell ``- evaluate`` and ``- train:`` (no body) as mappings so overrides can reach into them."""
    pipeline = raw.get("pipeline")
    if not isinstance(pipeline, list):
        return
    for i, stage in enumerate(pipeline):
        if isinstance(stage, str) and stage in STAGE_NAMES:
            pipeline[i] = {stage: {}}
        elif isinstance(stage, dict):
            for name in stage:
                if stage[name] is None:
                    stage[name] = {}


def _split_key(key: str) -> list[str | int]:
    parts: list[str | int] = []
    for piece in key.split("."):
        m = _INDEX_RE.match(piece)
        if not m:
            raise ValueError(f"cannot parse key part '{piece}'")
        parts.append(m.group(1))
        parts.extend(int(i) for i in re.findall(r"\[(\d+)\]", m.group(2)))
    return parts


def _set_path(node: Any, parts: list[str | int], value: Any) -> None:
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(part, int):
            if not isinstance(node, list) or part >= len(node):
                raise ValueError(f"index [{part}] is out of range")
            if last:
                node[part] = value
            else:
                node = node[part]
            continue
        if not isinstance(node, dict):
            raise ValueError(f"'{part}' is not inside a mapping")
        if last:
            node[part] = value
        else:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = [] if isinstance(parts[i + 1], int) else {}
            node = nxt
