"""The shape of the code, read with ast: sizes, the direction of imports, no import cycles, the public API.

docs/architecture.md states the layout and the layers; the tests here read both from its fenced
blocks (```layout, ```layers, ```exceptions), so the doc and the code cannot drift apart.

How imports are counted (the cycle, layer and direction tests):

- Every ``import`` and ``from ... import`` counts, at module level and inside functions, but not
  under ``if TYPE_CHECKING:`` (never run; annotations only) for cycles and layers; the rules the doc
  states on their own (``evaluation/`` never imports ``training/``, nothing imports ``cli/``) count
  those too.
- ``from ganforge import startup`` imports the submodule ``ganforge.startup`` (a file of that name
  exists); ``from ganforge import __version__`` imports the package ``ganforge``, its ``__init__.py``.
- An import of ``ganforge.a.b`` is an edge to ``ganforge.a.b`` alone, although Python runs the
  ``__init__`` of ``ganforge`` and ``ganforge.a`` first. Why: a submodule imports fine while its
  parent's ``__init__`` is still running (the parent is in ``sys.modules`` from its first line), so a
  package ``__init__`` that imports its submodules, which import their siblings, is no cycle. What
  can fail is code that reads a name the parent's ``__init__`` defines, and that always takes an
  import of the package itself (``from ganforge.cli import create_app``, ``import ganforge``), which
  is an edge to the package: a cycle through it is reported.
"""

from __future__ import annotations

import ast
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "ganforge"
TRAINER = REPO / "ganforge" / "training" / "trainer.py"
MAX_TRAINER_LINES = 300
MAX_FILE_LINES = 450
MAX_FUNCTION_LINES = 60
PLUGIN = REPO / "plugins" / "ganforge-sngan"
PUBLIC_MODULES = ("ganforge", "ganforge.testing")
API_DOC = REPO / "docs" / "plugins.md"
API_SECTION = "## The public API"


# -- reading the code ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    """One imported module: a submodule where the statement names one, else the module it names."""

    file: Path
    line: int
    target: str
    names: tuple[str, ...]  # what a ``from`` import takes from ``target`` (empty for a submodule, ``import``)
    in_function: bool
    type_checking: bool

    def where(self, root: Path) -> str:
        place = f"{self.file.relative_to(root)}:{self.line}"
        return f"{place}, inside a function" if self.in_function else place


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``root/package`` by dotted name; a package by its own name (its ``__init__.py``)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _import_nodes(node: ast.AST, in_function: bool = False, type_checking: bool = False) -> Iterator[tuple]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, in_function, type_checking
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            for statement in child.body:
                yield from _import_nodes(ast.Module([statement], []), in_function, True)
            for statement in child.orelse:
                yield from _import_nodes(ast.Module([statement], []), in_function, type_checking)
        else:
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from _import_nodes(child, inside, type_checking)


def imports_of(path: Path, module: str, is_package: bool, known: set[str]) -> list[Import]:
    """Every import in one file; ``known`` are the dotted names of existing modules (to tell a submodule)."""
    found = []
    for node, in_function, type_checking in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append(Import(path, node.lineno, alias.name, (), in_function, type_checking))
            continue
        if node.level:  # relative: from the file's package, one level up per extra dot
            package = module if is_package else module.rpartition(".")[0]
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            source = ".".join(base + ([node.module] if node.module else []))
        else:
            source = node.module or ""
        taken = []
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in known:
                found.append(Import(path, node.lineno, submodule, (), in_function, type_checking))
            else:
                taken.append(alias.name)
        if taken:
            found.append(Import(path, node.lineno, source, tuple(taken), in_function, type_checking))
    return found


def package_imports(root: Path = REPO, package: str = PACKAGE) -> dict[str, list[Import]]:
    """Each module of the package and its imports of the package's own modules."""
    modules = module_names(root, package)
    known = set(modules)
    return {
        module: [
            found
            for found in imports_of(path, module, path.name == "__init__.py", known)
            if found.target == package or found.target.startswith(f"{package}.")
        ]
        for module, path in modules.items()
    }


def functions_of(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method, nested ones too, with a qualified name (``Trainer.fit``, ``f.<locals>.g``)."""
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield prefix + child.name, child
            yield from functions_of(child, f"{prefix}{child.name}.<locals>.")
        elif isinstance(child, ast.ClassDef):
            yield from functions_of(child, f"{prefix}{child.name}.")
        else:
            yield from functions_of(child, prefix)


# -- import graphs -------------------------------------------------------------------------------


def import_graph(imports: dict[str, list[Import]]) -> dict[str, dict[str, Import]]:
    """module -> imported module -> the first import that makes the edge; TYPE_CHECKING imports left out."""
    graph: dict[str, dict[str, Import]] = {module: {} for module in imports}
    for module, found in imports.items():
        for edge in found:
            if not edge.type_checking and edge.target in graph:
                graph[module].setdefault(edge.target, edge)
    return graph


def strongly_connected(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """Tarjan's strongly connected components with more than one module, or a module importing itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph[module]:
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1 or module in graph[module]:
                components.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return components


def _shortest_path(graph: dict[str, dict[str, Import]], start: str, end: str, within: set[str]) -> list[str]:
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        if module == end:
            break
        for target in sorted(graph[module]):
            if target in within and target not in previous:
                previous[target] = module
                queue.append(target)
    path = [end]
    while previous[path[-1]] is not None:
        path.append(previous[path[-1]])
    return path[::-1]


def import_cycles(graph: dict[str, dict[str, Import]]) -> list[list[str]]:
    """For every import that closes a cycle, the shortest cycle through it: each import to break is shown."""
    cycles = set()
    for component in strongly_connected(graph):
        members = set(component)
        for module in component:
            for target in graph[module]:
                if target in members:
                    cycle = [module, *_shortest_path(graph, target, module, members)[:-1]]
                    first = cycle.index(min(cycle))
                    cycles.add(tuple(cycle[first:] + cycle[:first]))
    return [list(cycle) for cycle in sorted(cycles)]


def describe_cycle(graph: dict[str, dict[str, Import]], cycle: list[str], root: Path) -> str:
    steps = [cycle[0]]
    for module, target in zip(cycle, [*cycle[1:], cycle[0]], strict=True):
        steps.append(f"-> {target} ({graph[module][target].where(root)})")
    return " ".join(steps)


def reaching(graph: dict[str, dict[str, Import]], start: str, wanted: str) -> list[str] | None:
    """The shortest chain of imports from ``start`` to ``wanted`` or a module inside it, or None."""
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        module = queue.popleft()
        if _inside(module, wanted):
            chain = [module]
            while previous[chain[-1]] is not None:
                chain.append(previous[chain[-1]])
            return chain[::-1]
        for target in sorted(graph[module]):
            if target not in previous:
                previous[target] = module
                queue.append(target)
    return None


def _inside(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def direct_imports_into(imports: dict[str, list[Import]], source: str, target: str, root: Path = REPO) -> list[str]:
    """Each import, in any form (for type annotations alone too), by a module of package ``source`` of one of
    package ``target``."""
    return [
        f"{found.where(root)} imports {found.target}"
        for module, found_imports in imports.items()
        if _inside(module, source)
        for found in found_imports
        if _inside(found.target, target)
    ]


def imports_through_others(imports: dict[str, list[Import]], source: str, target: str) -> list[str]:
    """Each module of package ``source`` that imports one of package ``target`` through other modules: the
    shortest chain of imports that run."""
    graph = import_graph(imports)
    problems = []
    for module in sorted(graph):
        chain = reaching(graph, module, target) if _inside(module, source) else None
        if chain is not None and len(chain) > 2:
            problems.append(f"{module} imports {chain[-1]} through " + " -> ".join(chain[1:-1]))
    return problems


def public_names(module: str) -> list[str]:
    """A public module's ``__all__``, read from its source."""
    path = REPO / Path(*module.split(".")) / "__init__.py"
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{path.relative_to(REPO)} has no __all__")


# -- the rules -----------------------------------------------------------------------------------


def test_the_trainer_file_is_at_most_300_lines():
    lines = len(TRAINER.read_text().splitlines())
    assert lines <= MAX_TRAINER_LINES, (
        f"{TRAINER.relative_to(REPO)} has {lines} lines, more than {MAX_TRAINER_LINES}: move a part that has a "
        "reason to change of its own into a module of its own (see docs/architecture.md)"
    )


def test_no_file_is_longer_than_450_lines():
    too_long = []
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > MAX_FILE_LINES:
            too_long.append(f"{path.relative_to(REPO)}: {lines} lines")
    assert not too_long, (
        f"files longer than {MAX_FILE_LINES} lines (split each by its reasons to change):\n" + "\n".join(too_long)
    )


def test_no_function_or_method_is_longer_than_60_lines():
    too_long = []
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        for name, function in functions_of(ast.parse(path.read_text(), str(path))):
            length = function.end_lineno - function.lineno + 1
            if length > MAX_FUNCTION_LINES:
                too_long.append(f"{name} in {path.relative_to(REPO)}:{function.lineno}: {length} lines")
    assert not too_long, f"functions longer than {MAX_FUNCTION_LINES} lines:\n" + "\n".join(too_long)


def test_evaluation_never_imports_training():
    """Evaluation sits below training: the trainer evaluates, and ``ganforge eval`` runs without a trainer."""
    problems = direct_imports_into(package_imports(), "ganforge.evaluation", "ganforge.training")
    assert not problems, "ganforge/evaluation/ imports ganforge.training:\n" + "\n".join(problems)


def test_no_import_cycles_between_ganforge_modules():
    graph = import_graph(package_imports())
    cycles = [describe_cycle(graph, cycle, REPO) for cycle in import_cycles(graph)]
    assert not cycles, f"{len(cycles)} import cycle(s) between ganforge modules:\n" + "\n".join(cycles)


def public_api_problems(files: list[Path], root: Path = REPO) -> list[str]:
    """What these files take from ganforge beyond ``ganforge`` and ``ganforge.testing`` and their ``__all__``."""
    known = set(module_names(REPO, PACKAGE))
    allowed = {module: set(public_names(module)) for module in PUBLIC_MODULES}
    problems = []
    for path in files:
        for found in imports_of(path, path.stem, False, known):
            if not _inside(found.target, PACKAGE):
                continue
            if found.target not in allowed:
                problems.append(f"{found.where(root)} imports {found.target}")
                continue
            problems += [
                f"{found.where(root)} imports {name} from {found.target}, which is not in its __all__"
                for name in found.names
                if name not in allowed[found.target]
            ]
        problems += [
            f"{path.relative_to(root)}:{node.lineno} uses ganforge.{node.attr}, which is not in ganforge.__all__"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == PACKAGE
            and node.attr not in allowed[PACKAGE] | {"testing"}
        ]
    return problems


def test_the_sngan_plugin_uses_the_public_api_alone():
    files = sorted([*(PLUGIN / "src").rglob("*.py"), *(PLUGIN / "tests").rglob("*.py")])
    assert files, f"no Python files under {PLUGIN.relative_to(REPO)}"
    problems = public_api_problems(files)
    assert not problems, "the sngan plugin reaches past the public API:\n" + "\n".join(problems)


def test_every_public_name_is_importable_and_documented():
    import importlib

    section = API_DOC.read_text().partition(API_SECTION)[2].split("\n## ")[0]
    assert section, f"{API_DOC.relative_to(REPO)} has no section {API_SECTION!r}"
    documented = {word for span in re.findall(r"`([^`]+)`", section) for word in re.findall(r"\w+", span)}
    problems = []
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in public_names(module_name):
            if not hasattr(module, name):
                problems.append(f"{module_name}.__all__ lists {name}, which `import {module_name}` does not give")
            if name not in documented:
                problems.append(f"{module_name}.{name} is not documented in {API_DOC.name}, {API_SECTION!r}")
    assert not problems, "\n".join(problems)


# -- the layering docs/architecture.md states ------------------------------------------------------

ARCHITECTURE_DOC = REPO / "docs" / "architecture.md"


def fenced_block(doc: str, info: str) -> list[str] | None:
    """The lines of the block fenced as ```info in ``doc``, or None where there is none."""
    found = re.search(rf"^```{info}\n(.*?)^```$", doc, re.MULTILINE | re.DOTALL)
    return found.group(1).splitlines() if found else None


def package_files(root: Path, package: str) -> set[str]:
    """Every module file of ``root/package``, as a path under the package (``training/step.py``)."""
    return {path.relative_to(root / package).as_posix() for path in (root / package).rglob("*.py")}


def layout_files(lines: list[str], package: str) -> tuple[list[str], list[str]]:
    """The files a layout tree names (paths under ``package``), and what is wrong with its lines.

    The tree opens with ``package/``; each line below it is indented two spaces per folder it sits
    in and starts with a folder (``name/``) or a file (``name.py``); the rest of the line says what
    it holds (a file's line must).
    """
    lines = [line for line in lines if line.strip()]
    if not lines or lines[0].strip() != f"{package}/":
        return [], [f"the layout does not open with {package}/"]
    files, problems, folders = [], [], []
    for line in lines[1:]:
        indent = len(line) - len(line.lstrip(" "))
        depth, name = indent // 2, line.split()[0]
        if indent % 2 or not 1 <= depth <= len(folders) + 1:
            problems.append(f"the layout's line {line.strip()!r} is not indented two spaces under a folder")
            continue
        del folders[depth - 1 :]
        if name.endswith("/"):
            folders.append(name.rstrip("/"))
        elif name.endswith(".py"):
            files.append("/".join([*folders, name]))
            if len(line.split()) == 1:
                problems.append(f"the layout's line {line.strip()!r} says not what the file holds")
        else:
            problems.append(f"the layout's line {line.strip()!r} names no folder/ and no file.py")
    return files, problems


def layout_problems(root: Path, package: str, doc: str) -> list[str]:
    """Each file of the package the doc's layout leaves out, and each file it names that does not exist."""
    lines = fenced_block(doc, "layout")
    if lines is None:
        return ["the doc has no ```layout block"]
    named, problems = layout_files(lines, package)
    existing = package_files(root, package)
    problems += [
        f"{package}/{path} is named twice in the layout" for path in sorted(set(named)) if named.count(path) > 1
    ]
    problems += [f"{package}/{path} is missing from the layout" for path in sorted(existing - set(named))]
    problems += [f"the layout names {package}/{path}, which does not exist" for path in sorted(set(named) - existing)]
    return problems


@dataclass(frozen=True)
class Layer:
    """One line of the layers block: 1 at the top; its entries are packages (``x/``) and files (``x/y.py``)."""

    number: int
    entries: tuple[str, ...]

    def __str__(self) -> str:
        return f"layer {self.number} ({' '.join(self.entries)})"


def read_layers(lines: list[str]) -> tuple[list[Layer], list[str]]:
    """The layers, top to bottom: on each line, its entries, then what the layer is."""
    layers, problems = [], []
    for line in filter(str.strip, lines):
        words = line.split()
        named = next((index for index, word in enumerate(words) if not word.endswith(("/", ".py"))), len(words))
        entries = tuple(words[:named])
        if not entries or named == len(words):
            problems.append(f"the layers' line {line.strip()!r} does not name packages/modules, then what the layer is")
        layers.append(Layer(len(layers) + 1, entries))
    return layers, problems


def layer_of(path: str, entries: dict[str, Layer]) -> Layer | None:
    """The layer of the most specific entry that names a file: the file itself, else its nearest package."""
    if path in entries:
        return entries[path]
    folders = path.split("/")[:-1]
    while folders:
        if f"{'/'.join(folders)}/" in entries:
            return entries[f"{'/'.join(folders)}/"]
        folders.pop()
    return None


def layer_entries(layers: list[Layer], files: set[str], package: str) -> tuple[dict[str, Layer], list[str]]:
    """Each entry's layer; an entry named twice, naming no module, and a module in no layer are problems."""
    entries: dict[str, Layer] = {}
    problems = []
    for layer in layers:
        for entry in layer.entries:
            if entry in entries:
                problems.append(f"{entry} is named by {entries[entry]} and by {layer}")
            entries.setdefault(entry, layer)
    problems += [
        f"{layer} names {entry}, which is no module of {package}/"
        for entry, layer in entries.items()
        if entry not in files and not any(path.startswith(entry) for path in files if entry.endswith("/"))
    ]
    problems += [f"{package}/{path} is in no layer" for path in sorted(files) if layer_of(path, entries) is None]
    return entries, problems


def read_exceptions(lines: list[str]) -> tuple[set[tuple[str, str]], list[str]]:
    """The imports against the arrows a doc accepts: ``importing.py -> imported.py  why`` on each line."""
    accepted, problems = set(), []
    for line in filter(str.strip, lines):
        words = line.split()
        if len(words) < 4 or words[1] != "->" or not all(word.endswith(".py") for word in (words[0], words[2])):
            problems.append(f"the exception {line.strip()!r} is not 'importing.py -> imported.py  why'")
        else:
            accepted.add((words[0], words[2]))
    return accepted, problems


def layering_problems(root: Path, package: str, doc: str) -> list[str]:
    """Each import that goes to a layer above its own (``TYPE_CHECKING`` ones left out), each module in no
    layer, each entry named twice or naming nothing, and each accepted exception no import needs."""
    lines = fenced_block(doc, "layers")
    if lines is None:
        return ["the doc has no ```layers block"]
    layers, problems = read_layers(lines)
    accepted, exception_problems = read_exceptions(fenced_block(doc, "exceptions") or [])
    files = package_files(root, package)
    entries, entry_problems = layer_entries(layers, files, package)
    problems += exception_problems + entry_problems
    paths = {
        module: path.relative_to(root / package).as_posix() for module, path in module_names(root, package).items()
    }
    used = set()
    for module, found_imports in package_imports(root, package).items():
        source = layer_of(paths[module], entries)
        for found in found_imports:
            target = layer_of(paths[found.target], entries) if found.target in paths else None
            if found.type_checking or source is None or target is None or target.number >= source.number:
                continue
            if (paths[module], paths[found.target]) in accepted:
                used.add((paths[module], paths[found.target]))
                continue
            problems.append(f"{found.where(root)} imports {found.target}: {source} imports {target}, above it")
    problems += [
        f"the exception {importing} -> {imported} matches no import against the arrows: remove it from the doc"
        for importing, imported in sorted(accepted - used)
    ]
    return problems


def imports_from_outside(imports: dict[str, list[Import]], target: str, allowed: set[str], root: Path) -> list[str]:
    """Each import of package ``target`` by a module outside it, other than the ``allowed`` modules."""
    outside = {
        module: found for module, found in imports.items() if not _inside(module, target) and module not in allowed
    }
    return direct_imports_into(outside, target.partition(".")[0], target, root)


def test_the_layout_in_architecture_md_names_every_file_of_ganforge():
    problems = layout_problems(REPO, PACKAGE, ARCHITECTURE_DOC.read_text())
    assert not problems, "docs/architecture.md's layout and ganforge/ disagree:\n" + "\n".join(problems)


def test_every_import_goes_to_its_own_layer_or_below():
    """The layers docs/architecture.md states ("Which way imports go"), enforced on every import that runs."""
    problems = layering_problems(REPO, PACKAGE, ARCHITECTURE_DOC.read_text())
    assert not problems, "imports against the layers of docs/architecture.md:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("target", "allowed"), [("ganforge.cli", {"ganforge.__main__"}), ("ganforge.components", set())]
)
def test_what_the_layers_imply_holds_in_any_form(target, allowed):
    """Nothing but __main__.py imports cli/, nothing imports components/: the doc says so, whatever its layers."""
    problems = imports_from_outside(package_imports(), target, allowed, REPO)
    assert not problems, f"imports of {target} that docs/architecture.md says never happen:\n" + "\n".join(problems)


# -- the reading itself, on small made-up packages ------------------------------------------------


def _package(root: Path, files: dict[str, str]) -> dict[str, dict[str, Import]]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return import_graph(package_imports(root, "pkg"))


def test_a_package_init_that_imports_its_submodules_makes_no_cycle(tmp_path):
    graph = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg import a\n",
            "pkg/a.py": "from pkg import b\nfrom pkg.sub import c\n",
            "pkg/b.py": "X = 1\n",
            "pkg/sub/__init__.py": "from pkg.sub.c import Y\n",
            "pkg/sub/c.py": "from pkg.sub import d\nY = 1\n",
            "pkg/sub/d.py": "",
        },
    )
    assert graph["pkg.a"].keys() == {"pkg.b", "pkg.sub.c"}
    assert graph["pkg.sub.c"].keys() == {"pkg.sub.d"}
    assert import_cycles(graph) == []


def test_a_name_read_from_a_package_init_that_imports_the_reader_is_a_cycle(tmp_path):
    graph = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n__version__ = '1'\n",
            "pkg/a.py": "def version():\n    from pkg import __version__\n    return __version__\nA = 1\n",
        },
    )
    assert import_cycles(graph) == [["pkg", "pkg.a"]]
    assert "pkg/a.py:2, inside a function" in describe_cycle(graph, ["pkg", "pkg.a"], tmp_path)


def test_type_checking_imports_are_left_out_and_relative_ones_resolved(tmp_path):
    graph = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n"
            "else:\n    from . import c\n",
            "pkg/b.py": "from .a import A\n",
            "pkg/c.py": "import pkg.a\n",
        },
    )
    assert graph["pkg.a"].keys() == {"pkg.c"}
    assert graph["pkg.b"].keys() == {"pkg.a"}
    assert import_cycles(graph) == [["pkg.a", "pkg.c"]]


def test_every_import_that_closes_a_cycle_is_reported(tmp_path):
    graph = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\nimport pkg.c\n",
            "pkg/b.py": "import pkg.a\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/d.py": "import pkg.d\n",
        },
    )
    assert import_cycles(graph) == [["pkg.a", "pkg.b"], ["pkg.a", "pkg.c"], ["pkg.d"]]


@pytest.mark.parametrize(
    "source",
    [
        "from pkg.training.loop import X",
        "def f():\n    from pkg import training",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.training.loop",
        "from pkg import middle",
    ],
)
def test_an_import_of_training_from_evaluation_is_found_in_any_form(tmp_path, source):
    files = {
        "pkg/__init__.py": "",
        "pkg/middle.py": "from pkg.training import loop\n",
        "pkg/training/__init__.py": "",
        "pkg/training/loop.py": "X = 1\n",
        "pkg/evaluation/__init__.py": "",
        "pkg/evaluation/score.py": source + "\n",
    }
    _package(tmp_path, files)
    imports = package_imports(tmp_path, "pkg")
    direct = direct_imports_into(imports, "pkg.evaluation", "pkg.training", tmp_path)
    through = imports_through_others(imports, "pkg.evaluation", "pkg.training")
    if "middle" in source:
        assert (direct, through) == ([], ["pkg.evaluation.score imports pkg.training.loop through pkg.middle"])
    else:
        assert len(direct) == 1 and direct[0].startswith("pkg/evaluation/score.py:"), direct
        assert through == []


def test_evaluation_importing_what_training_imports_is_fine(tmp_path):
    files = {
        "pkg/__init__.py": "",
        "pkg/shared.py": "",
        "pkg/training/__init__.py": "from pkg import shared\n",
        "pkg/evaluation/__init__.py": "from pkg import shared\n",
    }
    _package(tmp_path, files)
    imports = package_imports(tmp_path, "pkg")
    assert direct_imports_into(imports, "pkg.evaluation", "pkg.training", tmp_path) == []
    assert imports_through_others(imports, "pkg.evaluation", "pkg.training") == []


def test_a_plugin_reaching_past_the_public_api_is_named(tmp_path):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "import ganforge\n"
        "import ganforge.testing\n"
        "from ganforge import GANLoss, components, hookimpl\n"
        "from ganforge.testing import installed_registry, load_plugins\n"
        "from ganforge.components.losses import r1_penalty\n"
        "def f():\n"
        "    from ganforge import Trainer\n"
        "    return ganforge.registry.Kind, ganforge.Kind, ganforge.testing.CHECKS\n"
    )
    assert public_api_problems([plugin], tmp_path) == [
        "plugin.py:3 imports ganforge.components",
        "plugin.py:4 imports load_plugins from ganforge.testing, which is not in its __all__",
        "plugin.py:5 imports ganforge.components.losses",
        "plugin.py:7, inside a function imports Trainer from ganforge, which is not in its __all__",
        "plugin.py:8 uses ganforge.registry, which is not in ganforge.__all__",
    ]


# -- the layering check itself, on a small made-up package and doc -------------------------------

LAYERED_PACKAGE = {
    "pkg/__init__.py": "",
    "pkg/top.py": "from pkg.low import leaf\n",
    "pkg/low/__init__.py": "",
    "pkg/low/leaf.py": "X = 1\n",
    "pkg/low/lifted.py": "from pkg import top\n",  # in low/, but placed in the top layer by its own entry
}
LAYERS = "top.py  low/lifted.py    what uses the rest\nlow/  __init__.py        the rest\n"
LAYOUT = (
    "pkg/\n  __init__.py  the API\n  top.py  uses low/\n"
    "  low/\n    __init__.py  nothing\n    leaf.py  X\n    lifted.py  uses top\n"
)


def _layered(root: Path, files: dict[str, str], layers: str = LAYERS, exceptions: str | None = None) -> str:
    _package(root, {**LAYERED_PACKAGE, **files})
    doc = f"# how it is built\n\n```layout\n{LAYOUT}```\n\n```layers\n{layers}```\n"
    return doc if exceptions is None else f"{doc}\n```exceptions\n{exceptions}```\n"


@pytest.mark.parametrize(
    ("leaf", "expected"),
    [
        ("X = 1\n", []),
        (
            "def f():\n    from pkg import top\n",
            [
                "pkg/low/leaf.py:2, inside a function imports pkg.top: layer 2 (low/ __init__.py) imports layer 1 "
                "(top.py low/lifted.py), above it"
            ],
        ),
        (
            "import pkg.low.lifted\n",
            [
                "pkg/low/leaf.py:1 imports pkg.low.lifted: layer 2 (low/ __init__.py) imports layer 1 "
                "(top.py low/lifted.py), above it"
            ],
        ),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.top import Y\n", []),
    ],
    ids=["no-import-up", "planted-in-a-function", "planted-at-module-level", "type-checking-left-out"],
)
def test_an_import_against_the_layers_is_named_with_its_place_and_both_layers(tmp_path, leaf, expected):
    doc = _layered(tmp_path, {"pkg/low/leaf.py": leaf})
    assert layering_problems(tmp_path, "pkg", doc) == expected


def test_an_exception_in_the_doc_accepts_its_import_and_is_named_once_no_import_needs_it(tmp_path):
    planted = {"pkg/low/leaf.py": "from pkg import top\n"}
    accepted = "low/leaf.py -> top.py  why it must\n"
    assert layering_problems(tmp_path, "pkg", _layered(tmp_path, planted, exceptions=accepted)) == []
    assert layering_problems(tmp_path, "pkg", _layered(tmp_path, {"pkg/low/leaf.py": ""}, exceptions=accepted)) == [
        "the exception low/leaf.py -> top.py matches no import against the arrows: remove it from the doc"
    ]
    assert layering_problems(tmp_path, "pkg", _layered(tmp_path, planted, exceptions="low/leaf.py top.py\n")) == [
        "the exception 'low/leaf.py top.py' is not 'importing.py -> imported.py  why'",
        "pkg/low/leaf.py:1 imports pkg.top: layer 2 (low/ __init__.py) imports layer 1 (top.py low/lifted.py), "
        "above it",
    ]


def test_every_module_is_in_exactly_one_layer_and_every_entry_names_one(tmp_path):
    layers = "top.py  low/lifted.py  gone.py  lost/  what uses the rest\nlow/  low/lifted.py  the rest\n"
    first = "layer 1 (top.py low/lifted.py gone.py lost/)"
    assert layering_problems(tmp_path, "pkg", _layered(tmp_path, {}, layers=layers)) == [
        f"low/lifted.py is named by {first} and by layer 2 (low/ low/lifted.py)",
        f"{first} names gone.py, which is no module of pkg/",
        f"{first} names lost/, which is no module of pkg/",
        "pkg/__init__.py is in no layer",
    ]
    assert layering_problems(tmp_path, "pkg", _layered(tmp_path, {}, layers="top.py low/\n")) == [
        "the layers' line 'top.py low/' does not name packages/modules, then what the layer is",
        "pkg/__init__.py is in no layer",
    ]


def test_a_file_missing_from_the_layout_or_named_there_in_vain_is_named(tmp_path):
    doc = _layered(tmp_path, {"pkg/low/new.py": ""})
    assert layout_problems(tmp_path, "pkg", doc) == ["pkg/low/new.py is missing from the layout"]
    (tmp_path / "pkg" / "low" / "new.py").unlink()
    (tmp_path / "pkg" / "top.py").unlink()
    assert layout_problems(tmp_path, "pkg", doc) == ["the layout names pkg/top.py, which does not exist"]
    bad = doc.replace("    leaf.py  X\n", "   leaf.py  X\n    leaf notes\n").replace("lifted.py  uses top", "lifted.py")
    assert layout_problems(tmp_path, "pkg", bad) == [
        "the layout's line 'leaf.py  X' is not indented two spaces under a folder",
        "the layout's line 'leaf notes' names no folder/ and no file.py",
        "the layout's line 'lifted.py' says not what the file holds",
        "pkg/low/leaf.py is missing from the layout",
        "the layout names pkg/top.py, which does not exist",
    ]


def test_an_import_of_cli_or_components_from_outside_is_named_in_any_form(tmp_path):
    _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/__main__.py": "from pkg.cli import main\n",
            "pkg/cli/__init__.py": "from pkg.cli import render\nmain = 1\n",
            "pkg/cli/render.py": "",
            "pkg/core.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.cli import render\n",
        },
    )
    imports = package_imports(tmp_path, "pkg")
    assert imports_from_outside(imports, "pkg.cli", {"pkg.__main__"}, tmp_path) == [
        "pkg/core.py:3 imports pkg.cli.render"
    ]
