"""The three floors of jaxmech/_src (docs/design.md): core <- models <- app, read from the source with ``ast``.

core imports no models or app module (nor the ``jaxmech`` package, which re-exports them), and inside core each
layer imports only the layers before it; models import core and models only; a jaxmech module is imported at
module level, except the run layer that app/cli.py defers for start-up; no module uses another module's private
names (``_name``), neither imported nor as ``module._name``. No JAX import: the files are parsed.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "jaxmech" / "_src"
FLOORS = ("core", "models", "app")
ALLOWED = {"core": {"core"}, "models": {"core", "models"}, "app": {"core", "models", "app", "jaxmech"}}
# core, bottom to top (docs/design.md "Three floors"); compile_options is a leaf every layer may use
CORE_ORDER = ("compile_options", "priors", "environments", "mechanisms", "reduction", "audit", "engine", "search")
LOCAL_IMPORTS_OK = {"app/cli.py"}  # deferred loading of the run layer (see its docstring)


def _target(name: str) -> tuple[str, str | None] | None:
    """``(floor, module)`` of an imported dotted name inside jaxmech, or ``None`` outside it.

    ``jaxmech`` itself (and ``from jaxmech import __version__``) is the package, which imports every floor."""
    parts = name.split(".")
    if parts[0] != "jaxmech":
        return None
    if len(parts) < 3 or parts[1] != "_src":
        return "jaxmech", None
    floor = parts[2]
    return floor, parts[3] if len(parts) > 3 else None


def _imports(node: ast.AST, package: str) -> list[str]:
    """Dotted names an import statement loads (``from a import b``: ``a.b``, which may be a module or a name)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if node.level:  # relative: resolve against the importing module's package
        base = package.split(".")
        base = base[: len(base) - node.level + 1]
        mod = ".".join(base + ([node.module] if node.module else []))
    else:
        mod = node.module or ""
    return [f"{mod}.{a.name}" for a in node.names]


def violations(rel: str, source: str) -> list[str]:
    """Every import in the module at ``rel`` (a path under jaxmech/_src, e.g. ``core/audit.py``) that breaks a floor
    rule, as ``'jaxmech/_src/<rel>:<line>: <what>'``."""
    parts = Path(rel).with_suffix("").parts
    floor = parts[0] if len(parts) > 1 and parts[0] in FLOORS else None
    module = parts[1] if floor and len(parts) > 1 else None
    package = ".".join(["jaxmech", "_src", *parts[:-1]]) or "jaxmech._src"
    tree = ast.parse(source, filename=rel)
    out = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                check(child, in_function)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    def check(node, in_function: bool) -> None:
        where = f"jaxmech/_src/{rel}:{node.lineno}"
        for name in _imports(node, package):
            tgt = _target(name)
            if tgt is None:
                continue
            t_floor, t_mod = tgt
            if t_floor not in FLOORS + ("jaxmech",):
                out.append(f"{where}: imports {name}: jaxmech/_src modules live in core/, models/ or app/")
                continue
            if in_function and rel not in LOCAL_IMPORTS_OK:
                out.append(f"{where}: function-local import of {name}: import it at module level")
            if floor is None:
                continue
            if t_floor not in ALLOWED[floor]:
                what = "the jaxmech package (every floor)" if t_floor == "jaxmech" else f"{t_floor}/"
                out.append(f"{where}: {floor}/ imports {name} ({what}); {floor}/ may import {', '.join(sorted(ALLOWED[floor]))}")
            elif floor == "core" == t_floor and t_mod in CORE_ORDER and module in CORE_ORDER:
                if CORE_ORDER.index(t_mod) >= CORE_ORDER.index(module) and t_mod != module:
                    out.append(f"{where}: core/{module} imports core/{t_mod}, a layer above it ({' -> '.join(CORE_ORDER)})")

    visit(tree, False)
    return out


def _is_module(dotted: str) -> bool:
    """Whether a dotted name inside jaxmech is a module (a file or a package folder), not a name in one."""
    rel = Path(*dotted.split("."))
    return (ROOT / rel).with_suffix(".py").exists() or (ROOT / rel / "__init__.py").exists()


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_uses(rel: str, source: str) -> list[str]:
    """Every use in the module at ``rel`` of a private name of another jaxmech module: ``from m import _x`` or
    ``m._x`` with ``m`` an imported jaxmech module, as ``'jaxmech/_src/<rel>:<line>: <what>'``."""
    parts = Path(rel).with_suffix("").parts
    package = ".".join(["jaxmech", "_src", *parts[:-1]])
    tree = ast.parse(source, filename=rel)
    out, modules = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for a, full in zip(node.names, _imports(node, package), strict=True):
                if not full.startswith("jaxmech."):
                    continue
                if _private(a.name):
                    out.append(f"jaxmech/_src/{rel}:{node.lineno}: imports the private name {full}")
                elif _is_module(full):
                    modules[a.asname or a.name] = full
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("jaxmech.") and a.asname:
                    modules[a.asname] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            if _private(node.attr):
                out.append(f"jaxmech/_src/{rel}:{node.lineno}: uses the private name {modules[node.value.id]}.{node.attr}")
    return out


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def test_every_module_sits_on_a_floor():
    stray = [str(p.relative_to(ROOT)) for p in _modules() if p.parent == SRC and p.name != "__init__.py"]
    assert not stray, f"modules outside core/, models/, app/: {stray}"
    unknown = [str(p.relative_to(ROOT)) for p in _modules() if p.parent.parent == SRC and p.parent.name not in FLOORS]
    assert not unknown, f"folders that are no floor: {unknown}"
    core = {p.stem for p in (SRC / "core").glob("*.py")} - {"__init__"}
    assert core == set(CORE_ORDER), f"core modules and CORE_ORDER differ: {sorted(core ^ set(CORE_ORDER))}"


def test_floors():
    found = [v for p in _modules() for v in violations(p.relative_to(SRC).as_posix(), p.read_text())]
    assert not found, "layer rule broken (docs/design.md, Three floors):\n" + "\n".join(found)


def test_no_private_name_crosses_a_module():
    found = [v for p in _modules() for v in private_uses(p.relative_to(SRC).as_posix(), p.read_text())]
    assert not found, "a private name used outside its module (make it public there):\n" + "\n".join(found)


@pytest.mark.parametrize(
    "rel, source, expect",
    [
        ("app/runs.py", "from jaxmech._src.app.build import _is_trade\n", "app/runs.py:1: imports the private name jaxmech._src.app.build._is_trade"),
        ("app/runs.py", "from jaxmech._src.core import reduction\n\nreduction._merge(a, b)\n", "app/runs.py:3: uses the private name jaxmech._src.core.reduction._merge"),
        ("models/x.py", "import jaxmech._src.core.mechanisms as m\nm._bisect_iters\n", "uses the private name jaxmech._src.core.mechanisms._bisect_iters"),
    ],
)
def test_the_private_name_checker_names_file_and_line(rel, source, expect):
    found = private_uses(rel, source)
    assert any(expect in v for v in found), found


def test_the_private_name_checker_allows_namedtuple_methods_and_own_names():
    src = "from jaxmech._src.core.mechanisms import Mechanism\nm = Mechanism._replace\n_x = 1\nprint(_x)\n"
    assert private_uses("app/runs.py", src) == []


@pytest.mark.parametrize(
    "rel, source, expect",
    [
        ("core/audit.py", "from jaxmech._src.models import trading\n", "core/audit.py:1: core/ imports jaxmech._src.models"),
        ("core/audit.py", "import jaxmech._src.app.runs\n", "core/ imports jaxmech._src.app.runs"),
        ("core/audit.py", "\n\nimport jaxmech as jm\n", "core/audit.py:3: core/ imports jaxmech (the jaxmech package"),
        ("core/audit.py", "from jaxmech import __version__\n", "the jaxmech package"),
        ("core/priors.py", "from jaxmech._src.core.engine import stream\n", "core/priors imports core/engine, a layer above"),
        ("core/audit.py", "from . import engine\n", "core/audit imports core/engine, a layer above"),
        ("models/trading.py", "from jaxmech._src.app import config as cfg\n", "models/ imports jaxmech._src.app.config"),
        ("models/trading.py", "from ..app.runs import run\n", "models/ imports jaxmech._src.app.runs.run"),
        ("models/pivotal.py", "def f():\n    from jaxmech._src.core.search import soft_max\n",
         "models/pivotal.py:2: function-local import of jaxmech._src.core.search.soft_max"),
        ("app/runs.py", "class A:\n    def m(self):\n        import jaxmech\n", "app/runs.py:3: function-local import"),
        ("app/runs.py", "from jaxmech._src import runs_bayesian\n", "live in core/, models/ or app/"),
    ],
)
def test_the_checker_names_file_and_line(rel, source, expect):
    found = violations(rel, source)
    assert any(expect in v for v in found), found


@pytest.mark.parametrize(
    "rel, source",
    [
        ("core/engine.py", "from jaxmech._src.core import audit, reduction\nimport numpy\n"),
        ("models/families.py", "from jaxmech._src.models import provision, trading\nfrom ..core.search import Family\n"),
        ("app/bench.py", "import jaxmech as jm\nfrom jaxmech._src.models import certify\n"),
        # benchmarks/baselines.py, outside the package, loaded from its path when a run asks for it
        ("app/bench.py", "import importlib.util\ndef load(p):\n    return importlib.util.spec_from_file_location('b', p)\n"),
        ("app/cli.py", "def main():\n    from jaxmech._src.app import runs\n"),
        ("core/search.py", "def f():\n    import numpy as np\n"),
    ],
)
def test_the_checker_allows(rel, source):
    assert violations(rel, source) == []
