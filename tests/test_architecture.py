"""The floors of docs/architecture.md, enforced: every module imports only from its own floor
or the floors below it (module-level and function-level imports alike). The one documented
exception: the notebook display methods of Model, Analysis and Profile import
``report/notebook.py`` inside the method, when a notebook calls them."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "archstat"

#: module (or package) -> floor, as the table in docs/architecture.md gives it
FLOORS = {
    "errors": 0, "outfile": 0, "version": 0, "machine": 0,
    "layers": 1,
    "expr": 2, "expr_builtins": 2, "expr_template": 2,
    "spec_io": 3, "spec": 3, "spec_values": 3, "spec_expand": 3, "spec_replay": 3, "space.declare": 3,
    "zoo": 4, "importers": 4,
    "graph": 5, "spec_writer": 5,
    "analysis": 6, "conventions": 6, "layer_frame": 6, "liveness": 6, "placement": 6, "receptive_field": 6,
    "engine": 7,
    "profiling": 8,
    "report": 9,
    "space": 10,
    "cli": 11, "__main__": 11, "": 11,   # "" is the package's __init__: the public facade
}
#: imports upward that the architecture page documents: (importer, imported), inside a function
LAZY_EXCEPTIONS = {("graph", "report.notebook"), ("analysis", "report.notebook"),
                   ("profiling.core", "report.notebook")}


def floor_of(module: str) -> tuple[str, int]:
    rel = module[len("archstat."):] if module.startswith("archstat.") else ""
    best = max((name for name in FLOORS if name == "" or rel == name or rel.startswith(name + ".")), key=len)
    return rel, FLOORS[best]


def imports(path: Path):
    """(imported module, line, inside a function) for every archstat import of a file."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    if parts[-1] == "__init__":
        package = parts[:-1]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                in_function.add(id(inner))
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                if node.module:
                    targets = [".".join(base + [node.module])]
                else:
                    targets = [".".join(base + [a.name]) for a in node.names]
            elif node.module and node.module.startswith("archstat"):
                targets = [node.module]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names if a.name.startswith("archstat")]
        for target in targets:
            yield target, node.lineno, id(node) in in_function


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def test_every_module_has_a_floor_and_the_page_names_the_packages():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name in ("layers/", "importers/", "conventions/", "engine/", "profiling/", "report/", "space/", "cli/"):
        assert f"`{name}`" in page, name
    for module, _ in modules():
        floor_of(module)  # raises for a module no floor covers


@pytest.mark.parametrize("module, path", list(modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_go_down_the_floors(module, path):
    me, mine = floor_of(module)
    for target, line, lazy in imports(path):
        them, theirs = floor_of(target)
        if theirs <= mine:
            continue
        exception = any(me.startswith(a) and them.startswith(b) for a, b in LAZY_EXCEPTIONS)
        assert exception and lazy, (f"{path.relative_to(ROOT)}:{line}: {module} (floor {mine}) imports "
                                    f"{target} (floor {theirs})")


def test_the_floor_table_of_the_page_matches_this_test():
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+) \| (.*?) \|", page, re.M)
    floors: dict[int, str] = {}
    for n, cell in rows:
        floors[int(n)] = floors.get(int(n), "") + cell
    assert max(floors) == max(FLOORS.values())
    for name, floor in FLOORS.items():
        if name in ("", "__main__", "version", "layer_frame"):
            continue
        shown = name.split(".")[-1] if "." in name else name
        assert shown in floors[floor], (name, floor, floors[floor][:80])


def test_the_analysis_rows_are_named_as_the_columns():
    """The layer loop's row type names what it fills; every name is a documented column."""
    from archstat.analysis import COLUMNS, _Row
    assert set(_Row._fields) <= set(COLUMNS)
    import archstat
    a = archstat.analyze(archstat.load("lenet5"))
    assert list(a.layers.columns) == list(COLUMNS)


def test_nothing_outside_the_registry_branches_on_a_layer_type_name():
    """No comparison or membership test against a registered type's name outside layers/ (the
    importers and the peer tools' conventions map foreign names onto the registry's: their tables
    are their own knowledge, docs/architecture.md says so)."""
    from archstat.layers import all_types
    names = set(all_types()) - {"input"}
    allowed = ("layers", "importers", "conventions")
    found = []
    for module, path in modules():
        rel, _ = floor_of(module)
        if rel.split(".")[0] in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    values = [side] if isinstance(side, ast.Constant) else (
                        side.elts if isinstance(side, (ast.Tuple, ast.List, ast.Set)) else [])
                    for v in values:
                        if isinstance(v, ast.Constant) and v.value in names:
                            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {v.value!r}")
    assert not found, found
