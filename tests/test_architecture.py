"""The house rules, checked on the code itself: no import cycles, layers only import downwards,
methods never see the orchestrator, every method is reached through its config class."""
from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "compress"

# Lower layers first; a module may import its own layer or lower ones, never higher.
LAYERS = [
    ("compress.errors", "compress.registry", "compress.version", "compress.progress", "compress.files",
     "compress.plotting"),
    ("compress.recipe",),
    ("compress.context", "compress.distributed", "compress.report", "compress.data", "compress.models",
     "compress.artifact", "compress.layers", "compress.ranking"),
    ("compress.training", "compress.evaluate", "compress.budget", "compress.method"),
    ("compress.analysis",),
    ("compress.prune", "compress.quantize", "compress.export"),
    ("compress.methods", "compress.state", "compress.measure", "compress.execution"),
    ("compress.pipeline", "compress.sweep"),
    ("compress.presets", "compress.api"),
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every compress module ``name`` imports — module level, function level, TYPE_CHECKING alike."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], *([base] if base
                                                                                                  else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m == "compress" or m.startswith("compress.")}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> int:
    for rank, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return rank
    return len(LAYERS)  # the package itself: the top


def test_every_module_has_a_layer():
    assert [m for m in MODULES if m != "compress" and _layer(m) == len(LAYERS)] == []


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in GRAPH.get(v, ()):
                cycles.append(component)

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == []


def test_layers_only_import_downwards():
    upward = [f"{m} → {d}" for m, deps in GRAPH.items() for d in deps if _layer(d) > _layer(m)]
    assert upward == []


@pytest.mark.parametrize("package", ["compress.prune", "compress.quantize"])
def test_methods_never_see_the_orchestrator_or_each_other(package):
    other = "compress.quantize" if package == "compress.prune" else "compress.prune"
    bad = [f"{m} → {d}" for m, deps in GRAPH.items() if m.startswith(package) for d in deps
           if d.startswith(("compress.pipeline", "compress.state", other))]
    assert bad == []


def test_the_recipe_schema_is_leaf_data():
    allowed = ("compress.recipe", "compress.errors", "compress.registry")
    bad = [f"{m} → {d}" for m, deps in GRAPH.items() if m.startswith("compress.recipe") for d in deps
           if not d.startswith(allowed)]
    assert bad == []


def test_the_library_never_imports_the_cli():
    assert [m for m, path in MODULES.items() if "import cli" in path.read_text() or "from cli" in path.read_text()] == []


def test_modules_stay_small():
    assert {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > 400} == {}


def test_every_method_config_has_a_handler_and_every_importance_an_implementation():
    from compress.methods import HANDLERS
    from compress.prune.importance import IMPORTANCE
    from compress.recipe.methods import METHOD_CONFIGS, Importance

    assert set(HANDLERS) == set(METHOD_CONFIGS)
    assert set(IMPORTANCE.names()) == set(get_args(Importance))


def test_cli_choices_come_from_the_config_classes():
    from cli import compress_cmds
    from compress.recipe.methods import PRUNE_METHODS, QUANTIZE_METHODS, Importance, tags

    assert get_args(compress_cmds.Method) == get_args(Importance)
    assert get_args(compress_cmds.Granularity) == tags(PRUNE_METHODS)
    assert get_args(compress_cmds.QuantMethod) == tags(QUANTIZE_METHODS)


def test_an_unknown_method_is_a_validation_error_not_a_fallback(tmp_path):
    import compress
    from compress.errors import RecipeError

    for stage in ({"prune": {"rate": 50, "granularity": "channel", "method": "magnitud"}},
                  {"quantize": {"bits": 4, "method": "kmean"}}):
        with pytest.raises(RecipeError, match="did you mean"):
            compress.load_recipe({"model": {"name": "mnist-cnn"}, "pipeline": [stage]})
