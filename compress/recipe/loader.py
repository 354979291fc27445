"""Reading a recipe: YAML → ``--set`` overrides → validation with dotted-path errors.

Hostile files are bounded: a recipe is a small text file (size-capped, binary refused), its
YAML may not expand (aliases) past a node budget, and error messages show at most a short
excerpt of an offending value.
"""
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
MAX_RECIPE_BYTES = 1 << 20  # recipes are a few hundred bytes; anything this large is not one
MAX_NODES = 100_000  # YAML values after alias expansion: an "alias bomb" stops here
_REPR_LIMIT = 60


def load_recipe(source: str | Path | dict[str, Any], overrides: list[str] | tuple[str, ...] = (),
                name: str | None = None, context: dict[str, Any] | None = None) -> Recipe:
    """Read, override and validate a recipe; raise :class:`RecipeError` listing every problem.

    ``context`` is the catalogue of registered names (datasets, models) to check names against;
    :func:`compress.load_recipe` passes modelzip's own.
    """
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
            problems.append(f"--set {cut(item)}: {exc}")
    if problems:
        raise RecipeError(name, problems)
    return validate(raw, name, context)


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping from a small text file, turning every failure into :class:`InputError`."""
    text = read_text(path, "recipe", MAX_RECIPE_BYTES)
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML: {exc}".replace("\n", " ")) from None
    check_size(raw, str(path))
    if not isinstance(raw, dict):
        raise InputError(f"{path}: a recipe is a YAML mapping (model:, data:, pipeline: …), "
                         f"got {type(raw).__name__}")
    return raw


def read_text(path: Path, what: str, limit: int) -> str:
    """The text of a small regular file, or one clear error (missing, a folder, special, binary, too big)."""
    hint = "check the path, or run `modelzip init` to write a starter recipe" if what == "recipe" else None
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory, not a file", hint)
    try:
        if path.exists() and not path.is_file():
            raise InputError(f"{what} {path} is not a regular file (a device, FIFO or socket)", hint)
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {what} {path}: {exc.strerror}", hint) from None
    if len(data) > limit:
        raise InputError(f"{what} {path} is larger than {limit // 1024} KB: not a {what}")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{what} {path} is not a text file (it is not UTF-8)", hint) from None
    if "\x00" in text:
        raise InputError(f"{what} {path} is not a text file (it holds NUL bytes)", hint)
    return text


def check_size(value: Any, source: str) -> None:
    """Refuse YAML that expands past :data:`MAX_NODES` values (shared aliases count every time)."""
    budget = MAX_NODES
    stack = [value]
    while stack:
        node = stack.pop()
        budget -= 1
        if budget < 0:
            raise InputError(f"{source}: the YAML expands to more than {MAX_NODES:,} values (aliases?): "
                             "not a recipe")
        if isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)


def validate(raw: dict[str, Any], name: str = "<recipe>", context: dict[str, Any] | None = None) -> Recipe:
    check_size(raw, name)
    try:
        return Recipe.model_validate(raw, context=context)
    except ValidationError as exc:
        raise RecipeError(name, [line for e in exc.errors() for line in format_error(e)]) from None


def short(value: Any) -> str:
    """``repr`` of a value, cut to a few dozen characters (a hostile value must not flood the terminal)."""
    return cut(repr(value))


def cut(text: str) -> str:
    return text if len(text) <= _REPR_LIMIT else text[:_REPR_LIMIT] + "…"


def format_error(err: Any) -> list[str]:
    """Line(s) for one pydantic error: ``dotted.path[1].key: what is wrong, got X``."""
    loc, kind, got = clean_loc(err["loc"]), err["type"], err.get("input")
    path = format_loc(loc)
    if kind == "extra_forbidden":
        return [f"{path}: {_unknown_key(err['loc'])}"]
    if kind == "missing":
        return [f"{path}: required key is missing"]
    if kind in _BOUNDS:
        key, sym = _BOUNDS[kind]
        return [f"{path}: must be {sym} {err['ctx'][key]}, got {short(got)}"]
    if kind == "literal_error":
        choices = re.findall(r"'([^']*)'", err["ctx"]["expected"])
        return [f"{path}: {short(got)} is not allowed{did_you_mean(str(got), choices)}"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = err["ctx"]["discriminator"].removesuffix("()")
        tags = re.findall(r"'([^']*)'", err["ctx"].get("expected_tags", ""))
        tag = err["ctx"].get("tag")
        if tag is None:
            return [f"{path}: expected a mapping of options, got {short(got)}"]
        return [f"{path}.{field}: {short(tag)} is not allowed{did_you_mean(str(tag), tags)}"]
    msg = err["msg"].removeprefix("Value error, ")
    if kind == "value_error":
        if not loc:  # recipe-level checks come as "path: message" lines
            return msg.splitlines()
        return [f"{path}: {msg}"]
    return [f"{path}: {msg[0].lower()}{msg[1:]}, got {short(got)}"]


def format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<recipe>"


def clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """``loc`` without the tags pydantic inserts for discriminated unions (``prune.channel.rate``)."""
    tp: Any = Recipe
    out: list[Any] = []
    for part in loc:
        members = _tagged(tp)
        if members is not None and part in members:
            tp = members[part]
            continue
        out.append(part)
        tp = _step(tp, part)
    return tuple(out)


def _unknown_key(raw_loc: tuple[Any, ...]) -> str:
    """"unknown key" with a suggestion — or which sibling method has that option."""
    key, parent, siblings = str(raw_loc[-1]), _resolve(raw_loc[:-2]), None
    members = _tagged(parent) if raw_loc[:-1] else None
    if members is not None and raw_loc[-2] in members:
        siblings = {tag: cls for tag, cls in members.items() if tag != raw_loc[-2] and key in cls.model_fields}
    if siblings:
        tag = raw_loc[-2]
        field = next(f for f, info in members[tag].model_fields.items() if info.default == tag)
        return f"not an option of {field} '{tag}' (only of {', '.join(repr(t) for t in siblings)})"
    fields = fields_at(raw_loc[:-1])
    return f"unknown key{did_you_mean(key, fields) if fields else ''}"


def fields_at(raw_loc: tuple[Any, ...]) -> list[str]:
    """The field names of the schema model found at ``raw_loc`` (tags included; empty if none)."""
    tp = _unwrap(_resolve(raw_loc))
    return list(tp.model_fields) if isinstance(tp, type) and issubclass(tp, BaseModel) else []


def _resolve(raw_loc: tuple[Any, ...]) -> Any:
    tp: Any = Recipe
    for part in raw_loc:
        members = _tagged(tp)
        tp = members[part] if members is not None and part in members else _step(tp, part)
    return tp


def _step(tp: Any, part: Any) -> Any:
    tp = _unwrap(tp)
    if isinstance(part, int):
        return get_args(tp)[0] if get_origin(tp) is list else None
    if isinstance(tp, type) and issubclass(tp, BaseModel) and part in tp.model_fields:
        return tp.model_fields[part].annotation
    return None


def _tagged(tp: Any) -> dict[str, Any] | None:
    """Tag → member class of a discriminated union (through Optional/Annotated), else None."""
    tp = _unwrap(tp)
    if get_origin(tp) not in (Union, types.UnionType):
        return None
    out = {}
    for member in get_args(tp):
        if get_origin(member) is typing.Annotated:
            cls, *meta = get_args(member)
            for m in meta:
                if hasattr(m, "tag"):
                    out[m.tag] = cls
    return out or None


def _unwrap(tp: Any) -> Any:
    while True:
        if get_origin(tp) in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        elif get_origin(tp) is typing.Annotated and _tagged(get_args(tp)[0]) is None:
            tp = get_args(tp)[0]
        elif get_origin(tp) is typing.Annotated:
            return get_args(tp)[0]
        else:
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
    check_size(value, f"--set {cut(key)}")
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
            raise ValueError(f"cannot parse key part {short(piece)}")
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
