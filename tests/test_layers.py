"""The house drawn from its imports: each package sits on one floor and imports only its own
floor's package or the floors below (the core's
small modules may import each other); no module imports itself back through others (no import
circle, counting the imports inside functions too); no module is shadowed by a name its
package exports; no module is over ~350 lines without a reason written at its top."""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

import dina_datasets

ROOT = pathlib.Path(dina_datasets.__file__).parent
# Floors, lowest first: a module may import its own package and anything on a lower floor.
FLOORS = (
    ("errors", "catalog", "registry", "layout", "formats", "maps", "images", "storage",
     "readahead", "_version", "_moved"),  # core: the table of truth, paths, small formats
    ("recordio",),                           # TFRecord framing, protos, index, reader, planner
    ("runs",),                               # parts, manifests, resume, cost records
    ("viz",),                                # pictures of maps and charts
    ("analysis",),                           # the scores table, statistics, leaderboard, report
    ("hf",),                                 # the Hugging Face side: builder, export, card
    ("generation",),                         # models, explainers, maps
    ("align",),                              # published records joined to their images
    ("metrics",),                            # scores of maps (re-explaining through generation)
    ("explore", "ray", "demo"),              # apps and engines on top of everything
    ("cli",),                                # the command line
    ("stats", "__init__"),                   # public facades: dina_datasets, dina_datasets.stats
)
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}
LONG = 350


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: pathlib.Path) -> set[str]:
    """The package's modules that `name` imports, anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*filter(None, base), *filter(None, [node.module])])
            elif (node.module or "").startswith("dina_datasets"):
                module = node.module.removeprefix("dina_datasets").lstrip(".")
            else:
                continue
            for alias in node.names:
                full = f"{module}.{alias.name}".lstrip(".")
                targets.add(full if full in MODULES else module)
        elif isinstance(node, ast.Import):
            targets.update(a.name.removeprefix("dina_datasets").lstrip(".")
                           for a in node.names if a.name.startswith("dina_datasets"))
    resolved = set()
    for target in targets:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        resolved.add(target or "__init__")
    resolved.discard(name)
    return resolved


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _floor(name: str) -> int:
    top = name.split(".")[0]
    assert top in FLOOR, f"{name}: put its package on a floor of FLOORS in {__file__}"
    return FLOOR[top]


def test_each_import_goes_down_the_floors():
    wrong = [f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets
             if _floor(b) > _floor(a)
             or (_floor(b) == _floor(a) > 0 and b.split(".")[0] != a.split(".")[0])]
    assert not wrong, "imports that go up or sideways:\n" + "\n".join(sorted(wrong))


def test_no_import_circle():
    index, low, stack, on, circles = {}, {}, [], set(), []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                on.discard(w)
                group.append(w)
            on.discard(v)
            if group:
                circles.append(sorted([v, *group]))

    for name in GRAPH:
        if name not in index:
            visit(name)
    assert not circles, f"import circles: {circles}"


@pytest.mark.parametrize("name", sorted(n for n, p in MODULES.items() if p.name == "__init__.py"
                                        and n != "__init__"))
def test_no_module_is_shadowed_by_a_name_of_its_package(name):
    package = importlib.import_module(f"dina_datasets.{name}")
    for child, path in MODULES.items():
        if child.rpartition(".")[0] == name:
            importlib.import_module(f"dina_datasets.{child}")
            leaf = child.rpartition(".")[2]
            value = getattr(package, leaf, None)
            assert value is None or getattr(value, "__name__", "") == f"dina_datasets.{child}", (
                f"dina_datasets.{name}.{leaf} is {value!r}, which hides the module {path}")


def test_long_modules_say_why():
    long = [f"{n} ({len(p.read_text().splitlines())} lines)" for n, p in MODULES.items()
            if len(p.read_text().splitlines()) > LONG
            and "Why this module is long:" not in p.read_text()[:3000]]
    assert not long, "modules over ~350 lines without 'Why this module is long:' at the top: " \
        + ", ".join(long)


def test_old_paths_still_import_with_a_deprecation_warning():
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error')\n"
            "import dina_datasets, dina_datasets.analysis.scores as new\n"
            "try:\n    import dina_datasets.scores\nexcept DeprecationWarning as w:\n"
            "    assert 'dina_datasets.analysis.scores' in str(w), w\nelse:\n"
            "    raise AssertionError('no warning')\n"
            "warnings.simplefilter('ignore')\n"
            "import dina_datasets.scores as old, dina_datasets.cost as cost\n"
            "assert old.COLUMNS is new.COLUMNS\n"
            "from dina_datasets.runs.cost import read\n"
            "from dina_datasets.analysis.cost import collect\n"
            "assert cost.read is read and cost.collect is collect\n"
            "from dina_datasets.planted import FACTORY\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
