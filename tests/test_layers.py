"""The package's layers import in one direction, and no modules import each other in a circle.

Layers, lowest first (siamjax/__init__.py explains them): a module may import modules of its own
layer or of a lower one, never of a higher one. Every import counts, those inside functions too.
``siamjax/__init__.py`` (the facade that re-exports ``load``, ``Model``, ...) and the installed configs
are outside the rule.
"""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "siamjax"
LAYERS = ["settings", "config_layout", "nn", "losses", "data", "checkpoint", "infer", "eval", "train", "tracking", "cli"]
MAX_LINES = 450  # split a module by concept well before this


def modules() -> dict[str, pathlib.Path]:
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def layer(module: str) -> int | None:
    """The layer of ``siamjax.X...`` (None for the facade ``siamjax``)."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    if parts[1] not in LAYERS:
        raise AssertionError(f"{module}: not in any layer {LAYERS}; add it to one")
    return LAYERS.index(parts[1])


def imports(name: str, path: pathlib.Path, known: dict) -> set[str]:
    """siamjax modules that ``name`` imports anywhere in its file (module names, or packages when a
    name imported from a package is not a module)."""
    out = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "siamjax"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")[: len(name.split(".")) - node.level + (1 if is_pkg else 0)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "siamjax":
                continue
            for a in node.names:
                out.add(f"{module}.{a.name}" if f"{module}.{a.name}" in known else module)
    return out


def graph() -> dict[str, set[str]]:
    known = modules()
    skip = lambda m: m.startswith("siamjax.configs")  # noqa: E731
    return {m: {d for d in imports(m, p, known) if d != m and not skip(d)} for m, p in known.items() if not skip(m)}


def test_every_module_belongs_to_a_layer():
    for m in graph():
        layer(m)


def test_no_module_imports_a_higher_layer():
    bad = []
    for m, deps in graph().items():
        if layer(m) is None:
            continue
        for d in deps:
            if d == "siamjax" and LAYERS[layer(m)] != "cli":  # the commands may use the facade
                bad.append(f"{m} imports the facade siamjax (import the module that defines the name)")
            elif d != "siamjax" and layer(d) > layer(m):
                bad.append(f"{m} ({LAYERS[layer(m)]}) imports {d} ({LAYERS[layer(d)]})")
    assert not bad, "\n".join(sorted(bad))


def test_no_import_cycles():
    g = graph()
    index, low, stack, on, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in g:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_is_small(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by concept"


def test_the_checker_sees_a_violation(tmp_path):
    """The import parser finds imports inside functions and resolves ``from pkg import module``."""
    src = tmp_path / "mod.py"
    src.write_text("def f():\n    from siamjax.infer import whitening\n    import siamjax.cli.eval\n")
    found = imports("siamjax.nn.mod", src, modules())
    assert found == {"siamjax.infer.whitening", "siamjax.cli.eval"}
