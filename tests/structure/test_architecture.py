"""The dependency direction, read from the source with ``ast`` (nothing here imports the modules it checks).

    domain  <-  learning, store, privacy  <-  usecases  <-  tools, resources  <-  server

Optional extras stay optional: their libraries are imported only lazily, inside the adapter that needs them.
"""

from __future__ import annotations

import ast
import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the repository root is the package ``mnky_profiles``
PACKAGE = "mnky_profiles"
SKIPPED_DIRS = {"tests", "benchmarks", "build", "dist", "node_modules", "var", "__pycache__"}

# Project layers each layer may import (besides itself). ``root`` is the package's ``__init__``: the public API.
ALLOWED: dict[str, set[str]] = {
    "domain": set(),
    "learning": {"domain"},
    "store": {"domain"},
    "privacy": {"domain"},
    "usecases": {"domain", "learning", "privacy"},
    "tools": {"domain", "learning", "privacy", "usecases", "resources"},
    "resources": {"domain", "learning", "privacy", "usecases", "tools"},
    "server": {"root", "domain", "learning", "store", "privacy", "usecases", "tools", "resources", "examples"},
    "examples": {"root", "domain", "learning", "store", "privacy", "usecases", "tools", "resources", "server"},
    "root": {"domain", "learning", "store", "privacy", "usecases", "tools", "resources", "server", "examples"},
}

INFRASTRUCTURE = {"sqlalchemy", "alembic", "asyncpg", "mcp", "starlette", "uvicorn", "pydantic_settings", "yaml",
                  "httpx", "pinecone", "openai"}
# Third-party packages a layer must not import (the standard library is always fine).
FORBIDDEN_THIRD_PARTY: dict[str, set[str]] = {
    "privacy": INFRASTRUCTURE,
    "usecases": INFRASTRUCTURE,
    "tools": INFRASTRUCTURE - {"mcp"},
    "resources": INFRASTRUCTURE - {"mcp"},
    "store": {"mcp", "starlette", "uvicorn", "pydantic_settings"},
}
# Layers held to an allow-list of third-party packages instead.
ONLY_THIRD_PARTY: dict[str, set[str]] = {
    "domain": set(),
    "learning": {"numpy", "scipy"},
}
MCP_LAYERS = {"tools", "resources", "server"}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted name of the importing module
    path: str  # its file, relative to the repository root
    line: int
    module: str  # absolute dotted name of what is imported
    lazy: bool  # inside a function body: runs when called, not when the module is imported
    type_only: bool  # under ``if TYPE_CHECKING:``
    scopes: tuple[str, ...]  # enclosing classes and functions

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    def where(self) -> str:
        return f"{self.path}:{self.line} imports {self.module}"


def layer_of(module: str) -> str | None:
    """The project layer of a dotted module name, or None for anything outside the project."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    return parts[1] if len(parts) > 1 else "root"


def source_files(root: Path = ROOT) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).parts
        dirs = parts[:-1]
        if any(d in SKIPPED_DIRS or d.startswith(".") or d.endswith(".egg-info") for d in dirs):
            continue
        # Only modules inside packages are part of the installed package (plus the root ``__init__``).
        if dirs and not all((root.joinpath(*dirs[:i + 1]) / "__init__.py").exists() for i in range(len(dirs))):
            continue
        if not dirs and path.name != "__init__.py":
            continue
        yield path


def module_name(path: Path, root: Path = ROOT) -> tuple[str, bool]:
    """The dotted name of a source file and whether it is a package (``__init__``)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join([PACKAGE, *parts]), is_package


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, path: str, known: set[str]) -> None:
        self.module, self.is_package, self.path, self.known = module, is_package, path, known
        self.scopes: list[tuple[str, bool]] = []  # (name, is_function)
        self.type_only = 0
        self.found: list[Import] = []

    def _add(self, node: ast.AST, module: str) -> None:
        self.found.append(Import(
            importer=self.module, path=self.path, line=getattr(node, "lineno", 0), module=module,
            lazy=any(is_function for _, is_function in self.scopes), type_only=self.type_only > 0,
            scopes=tuple(name for name, _ in self.scopes),
        ))

    def _scoped(self, node: ast.AST, name: str, is_function: bool) -> None:
        self.scopes.append((name, is_function))
        self.generic_visit(node)
        self.scopes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._scoped(node, node.name, True)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._scoped(node, node.name, True)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scoped(node, "<lambda>", True)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._scoped(node, node.name, False)

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.visit(node.test)
            self.type_only += 1
            for child in node.body:
                self.visit(child)
            self.type_only -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = resolve(self.module, self.is_package, node.level, node.module)
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            # ``from . import migrations`` imports a module; ``from .x import name`` imports from one.
            self._add(node, candidate if candidate in self.known else base)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        if name in {"import_module", "__import__"} and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and not first.value.startswith("."):
                self._add(node, first.value)
        self.generic_visit(node)


def resolve(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name a (possibly relative) ``from`` import refers to."""
    if level == 0:
        assert target is not None
        return target
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level - 1 >= len(base):
        raise ValueError(f"relative import beyond the top-level package in {module}")
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_in(source: str, module: str, is_package: bool = False, path: str = "<source>",
               known: set[str] | None = None) -> list[Import]:
    collector = _Collector(module, is_package, path, known or set())
    collector.visit(ast.parse(source, filename=path))
    return collector.found


def project_modules() -> set[str]:
    return {module_name(p)[0] for p in source_files()}


def all_imports() -> list[Import]:
    known = project_modules()
    found: list[Import] = []
    for path in source_files():
        module, is_package = module_name(path)
        found += imports_in(path.read_text(encoding="utf-8"), module, is_package,
                            str(path.relative_to(ROOT)), known)
    return found


IMPORTS = all_imports()


# -- the rules, as functions so the scanner itself can be tested on made-up sources ---------------------------


def layer_violations(imports: list[Import]) -> list[str]:
    problems = []
    for imp in imports:
        source, target = layer_of(imp.importer), layer_of(imp.module)
        if source is None or target is None or target == source:
            continue
        allowed = ALLOWED.get(source, set())
        if target not in allowed:
            problems.append(f"{imp.where()}: {source} may import only {', '.join(sorted(allowed)) or 'itself'}")
    return problems


def third_party_violations(imports: list[Import]) -> list[str]:
    problems = []
    stdlib = sys.stdlib_module_names
    for imp in imports:
        source = layer_of(imp.importer)
        if source is None or layer_of(imp.module) is not None or imp.top in stdlib:
            continue
        if source in ONLY_THIRD_PARTY and imp.top not in ONLY_THIRD_PARTY[source]:
            allowed = ", ".join(sorted(ONLY_THIRD_PARTY[source])) or "no third-party packages"
            problems.append(f"{imp.where()}: {source} may use only the standard library and {allowed}")
        if imp.top in FORBIDDEN_THIRD_PARTY.get(source, set()):
            problems.append(f"{imp.where()}: {source} must not depend on {imp.top}")
        if imp.top == "mcp" and source not in MCP_LAYERS:
            problems.append(f"{imp.where()}: the MCP SDK belongs in {', '.join(sorted(MCP_LAYERS))}")
    return problems


# Optional extras: (the import names, where they may be imported). Each import must also be lazy.
OPTIONAL: dict[str, tuple[tuple[str, ...], str]] = {
    "postgresql": (("asyncpg", "sqlalchemy.ext.asyncio"), "postgres"),
    "pinecone": (("pinecone",), "pinecone"),
    "openai": (("openai",), "openai"),
}


def _belongs_to(imp: Import, marker: str) -> bool:
    """Inside a store adapter whose file name or enclosing class names the backend."""
    if layer_of(imp.importer) != "store":
        return False
    stem = imp.importer.rsplit(".", 1)[-1].lower()
    return marker in stem or any(marker in scope.lower() for scope in imp.scopes if scope[:1].isupper())


def optional_extra_violations(imports: list[Import]) -> list[str]:
    problems = []
    for extra, (names, marker) in OPTIONAL.items():
        for imp in imports:
            if layer_of(imp.importer) is None:
                continue
            if not any(imp.module == n or imp.module.startswith(n + ".") for n in names):
                continue
            if not _belongs_to(imp, marker):
                problems.append(f"{imp.where()}: the '{extra}' extra's library belongs in its store adapter only")
            elif not (imp.lazy or imp.type_only):
                problems.append(f"{imp.where()}: import it inside a function, so the module loads without the "
                                f"'{extra}' extra")
    return problems


# -- the scanner sees what it should ---------------------------------------------------------------------------


def test_the_scan_covers_the_package() -> None:
    modules = project_modules()
    for expected in ["mnky_profiles", "mnky_profiles.domain.ports", "mnky_profiles.store.sql.database",
                     "mnky_profiles.store.migrations.env", "mnky_profiles.server.cli", "mnky_profiles.usecases"]:
        assert expected in modules
    assert not any(".tests" in m or ".benchmarks" in m or ".venv" in m for m in modules)
    by_layer = {(layer_of(i.importer), layer_of(i.module)) for i in IMPORTS}
    # The composition root knows the store, and use cases reach the domain through relative imports.
    assert ("server", "store") in by_layer and ("usecases", "domain") in by_layer


def test_relative_imports_resolve_to_their_layer() -> None:
    known = {"mnky_profiles.store", "mnky_profiles.store.sql", "mnky_profiles.store.migrations"}
    cases = {
        ("from ..store import sql", "mnky_profiles.usecases.learning", False): "mnky_profiles.store.sql",
        ("from ..store import anything", "mnky_profiles.usecases.learning", False): "mnky_profiles.store",
        ("from .. import store", "mnky_profiles.usecases", True): "mnky_profiles.store",
        ("from ...store.sql import x", "mnky_profiles.usecases.sub.mod", False): "mnky_profiles.store.sql",
        ("from . import migrations", "mnky_profiles.store", True): "mnky_profiles.store.migrations",
        ("from .x import y", "mnky_profiles.store.sql.repositories", False): "mnky_profiles.store.sql.x",
        ("import mnky_profiles.store.sql", "mnky_profiles.tools.a", False): "mnky_profiles.store.sql",
        ("importlib.import_module('mnky_profiles.store')", "mnky_profiles.tools.a", False): "mnky_profiles.store",
    }
    for (source, module, is_package), expected in cases.items():
        (imp,) = imports_in(source, module, is_package, known=known)
        assert imp.module == expected, source
    with pytest.raises(ValueError):
        resolve("mnky_profiles.domain.x", False, 4, "y")


def test_the_rules_catch_violations() -> None:
    cases = [
        (layer_violations, "from ..store.sql import store", "mnky_profiles.usecases.profiles"),
        (layer_violations, "from ..server import runtime", "mnky_profiles.tools.profiles"),
        (layer_violations, "from ..store import sql", "mnky_profiles.resources.profile"),
        (layer_violations, "from ...privacy import gate", "mnky_profiles.store.sql.store"),
        (layer_violations, "from ..learning import vectors", "mnky_profiles.domain.ports"),
        (layer_violations, "from .. import __version__", "mnky_profiles.domain.ports"),
        (third_party_violations, "import sqlalchemy", "mnky_profiles.domain.ports"),
        (third_party_violations, "from pydantic import BaseModel", "mnky_profiles.domain.ports"),
        (third_party_violations, "import pandas", "mnky_profiles.learning.vectors"),
        (third_party_violations, "from mcp import types", "mnky_profiles.usecases.profiles"),
        (third_party_violations, "from mcp import types", "mnky_profiles.store.sql.store"),
        (third_party_violations, "import sqlalchemy as sa", "mnky_profiles.privacy.gate"),
        (optional_extra_violations, "import asyncpg", "mnky_profiles.store.sql.database"),
        (optional_extra_violations, "def f():\n    import asyncpg", "mnky_profiles.server.runtime"),
        (optional_extra_violations, "class SQLite:\n    def f(self):\n        import asyncpg",
         "mnky_profiles.store.sql.database"),
        (optional_extra_violations, "import openai", "mnky_profiles.store.embedders.openai"),
        (optional_extra_violations, "def f():\n    import pinecone", "mnky_profiles.store.embedders.openai"),
    ]
    for rule, source, module in cases:
        assert rule(imports_in(source, module)), f"{rule.__name__} missed: {source!r} in {module}"
    fine = [
        (layer_violations, "from ..domain.ports import Store", "mnky_profiles.usecases.profiles"),
        (third_party_violations, "import numpy as np", "mnky_profiles.learning.vectors"),
        (optional_extra_violations, "class PostgresDatabase:\n    def f(self):\n        import asyncpg",
         "mnky_profiles.store.sql.database"),
        (optional_extra_violations, "def f():\n    import openai", "mnky_profiles.store.embedders.openai"),
        (optional_extra_violations, "if TYPE_CHECKING:\n    from openai import AsyncOpenAI",
         "mnky_profiles.store.embedders.openai"),
        (optional_extra_violations, "def f():\n    import pinecone", "mnky_profiles.store.vectors.pinecone"),
    ]
    for rule, source, module in fine:
        assert not rule(imports_in(source, module)), f"{rule.__name__} flagged: {source!r} in {module}"


# -- the rules hold for the package ---------------------------------------------------------------------------


def test_every_top_level_package_has_a_layer() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - SKIPPED_DIRS
    unplaced = sorted(packages - set(ALLOWED))
    assert not unplaced, f"give these packages a place in the dependency direction: {unplaced}"


def test_dependency_direction() -> None:
    problems = layer_violations(IMPORTS)
    assert not problems, "\n".join(problems)


def test_domain_imports_nothing_but_the_standard_library() -> None:
    domain = [i for i in IMPORTS if layer_of(i.importer) == "domain"]
    assert domain
    outside = [i.where() for i in domain
               if layer_of(i.module) not in (None, "domain") or (layer_of(i.module) is None
                                                                 and i.top not in sys.stdlib_module_names)]
    assert not outside, "\n".join(outside)


def test_third_party_dependencies_by_layer() -> None:
    problems = third_party_violations(IMPORTS)
    assert not problems, "\n".join(problems)


def test_optional_extras_stay_optional() -> None:
    problems = optional_extra_violations(IMPORTS)
    assert not problems, "\n".join(problems)
    # The PostgreSQL driver is in use, and only on the PostgreSQL path.
    asyncpg = [i for i in IMPORTS if i.top == "asyncpg"]
    assert asyncpg
    assert all(i.importer == "mnky_profiles.store.sql.database" and "PostgresDatabase" in i.scopes and i.lazy
               for i in asyncpg), [i.where() for i in asyncpg]


# -- packaging: one import package, every folder listed, extras optional -------------------------------------

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
BUILD_ARTEFACTS = {"build", "dist", "node_modules", "var", "__pycache__", "htmlcov"}


def _shipped(relative: Path) -> bool:
    parts = relative.parts
    return not any(p in SKIPPED_DIRS or p in BUILD_ARTEFACTS or p.startswith(".") or p.endswith(".egg-info")
                   for p in parts)


def package_folders(root: Path = ROOT) -> set[str]:
    """Dotted names of every folder with an ``__init__.py`` that the wheel should carry."""
    found = set()
    for init in root.rglob("__init__.py"):
        relative = init.parent.relative_to(root)
        if _shipped(relative):
            found.add(".".join([PACKAGE, *relative.parts]))
    return found


def test_every_package_folder_is_listed_in_pyproject() -> None:
    setuptools = PYPROJECT["tool"]["setuptools"]
    assert setuptools["package-dir"] == {PACKAGE: "."}
    listed = set(setuptools["packages"])
    folders = package_folders()
    assert "mnky_profiles.store.migrations.versions" in folders
    missing, stale = sorted(folders - listed), sorted(listed - folders)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"
    assert not stale, f"listed in pyproject.toml but no folder with an __init__.py: {stale}"


def test_every_folder_with_modules_is_a_package() -> None:
    """A folder of modules without ``__init__.py`` would silently be left out of the wheel."""
    loose = sorted({str(p.parent.relative_to(ROOT)) for p in ROOT.rglob("*.py")
                    if p.parent != ROOT and _shipped(p.parent.relative_to(ROOT))
                    and not (p.parent / "__init__.py").exists()})
    assert not loose, f"folders with modules but no __init__.py: {loose}"


def test_console_script_and_dependencies() -> None:
    from packaging.requirements import Requirement

    project = PYPROJECT["project"]
    target = project["scripts"]["mnky-profiles"]
    module, _, func = target.partition(":")
    assert module == "mnky_profiles.server.cli" and func == "main"
    cli = ast.parse((ROOT / "server" / "cli.py").read_text(encoding="utf-8"))
    assert any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in cli.body)

    base = {Requirement(r).name: Requirement(r) for r in project["dependencies"]}
    assert str(base["mcp"].specifier) in {"<3,>=2.3", ">=2.3,<3"}
    assert base["mcp"].specifier.contains("2.3.0") and not base["mcp"].specifier.contains("3.0")
    assert not base["mcp"].specifier.contains("2.2.9")
    extras = project["optional-dependencies"]
    for extra, library in [("postgresql", "asyncpg"), ("pinecone", "pinecone"), ("openai", "openai")]:
        assert library in {Requirement(r).name for r in extras[extra]}, extra
        assert library not in base, f"{library} belongs in the '{extra}' extra, not the base dependencies"
    assert not {"asyncpg", "pinecone", "pinecone-client", "openai"} & set(base)


def _isolation() -> list[str]:
    """Build offline with the installed setuptools when it builds wheels itself (70.1 and later); otherwise pip
    fetches the build requirements from the package index into an isolated environment."""
    from packaging.version import Version

    try:
        if Version(importlib.metadata.version("setuptools")) >= Version("70.1"):
            return ["--no-build-isolation"]
    except importlib.metadata.PackageNotFoundError:
        pass
    return []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[zipfile.ZipFile, Path]:
    """The wheel built from a copy of this checkout (so no build output lands in the repository), and the copy."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache", "__pycache__",
        "*.egg-info", "build", "dist", "var", "node_modules", "*.db", "*.db-wal", "*.db-shm"))
    out = work / "out"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
         *_isolation(), str(source), "-w", str(out)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    (built,) = out.glob("mnky_profiles-*.whl")
    return zipfile.ZipFile(built), source


def test_the_wheel_carries_the_package_and_its_data(wheel: tuple[zipfile.ZipFile, Path]) -> None:
    archive, source = wheel
    names = set(archive.namelist())
    tops = {n.split("/", 1)[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {PACKAGE}
    for required in ["mnky_profiles/__init__.py", "mnky_profiles/store/migrations/env.py",
                     "mnky_profiles/store/migrations/versions/0001_core.py",
                     "mnky_profiles/store/migrations/script.py.mako", "mnky_profiles/server/default.yaml"]:
        assert required in names, required
    # Every module and migration of the checkout ships.
    for path in source_files(source):
        assert f"{PACKAGE}/{path.relative_to(source).as_posix()}" in names, path
    assert not [n for n in names if "/tests/" in n or n.startswith("tests/") or "/benchmarks/" in n]
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "mnky-profiles = mnky_profiles.server.cli:main" in archive.read(entry_points).decode()
