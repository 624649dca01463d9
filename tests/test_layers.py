"""Imports flow one way: imgsite ← accounts ← classifier ← scaling ← deploy, and no module imports
itself back through others (function-level imports count: one that dodges a cycle still is one)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["imgsite", "accounts", "classifier", "scaling", "deploy"]  # each may import only those before it


def modules():
    """{dotted name: path} of the application's modules, migrations excepted."""
    found = {}
    for package in LAYERS:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported_names(path):
    """Every module named by an import statement anywhere in the file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def graph():
    """{module: the application modules it imports}."""
    known = modules()
    return {name: {imported for imported in imported_names(path) if imported in known and imported != name}
            for name, path in known.items()}


def layer(module):
    return LAYERS.index(module.split(".")[0])


def test_no_import_climbs_a_layer():
    climbs = [f"{module} imports {imported}" for module, imports in graph().items() for imported in imports
              if layer(imported) > layer(module)]
    assert climbs == []


def test_no_module_imports_itself_back():
    edges = graph()
    cycles = []

    def visit(module, path):
        for imported in sorted(edges[module]):
            if imported == path[0]:
                cycles.append(" → ".join([*path, imported]))
            elif imported not in path and len(path) < 8:
                visit(imported, [*path, imported])

    for module in sorted(edges):
        visit(module, [module])
    # A package importing its own submodule (fleets → fleets.local) is how a package chooses
    # an implementation, not a cycle, unless the submodule imports the package back.
    assert cycles == []


def test_the_checks_see_the_application():
    edges = graph()
    assert "classifier.imgsite" not in edges and "classifier.tasks" in edges
    assert "classifier.pipeline" in edges["classifier.tasks"]
