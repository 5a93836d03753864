"""The layout keeps its promises: who may import whom, and every module documented.

Rooms (README "Layout"): the pure core; the runtime, which runs inside Gunicorn under fork
and signal constraints; the framework adapters; the offline tools (checker, drill, CLI);
and the public entry points. The import rules below are what make the runtime independent
of the tools and the core free of everything. Read from the source with ``ast``: no import
side effects, and a lazy import inside a function counts as much as one at the top.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "gunicorn_zdt"

#: room -> the modules (and packages, with everything under them) that belong to it.
ROOMS: dict[str, tuple[str, ...]] = {
    "core": ("gunicorn_zdt.core",),
    "runtime": ("gunicorn_zdt.runtime",),
    "adapters": (
        "gunicorn_zdt.health",
        "gunicorn_zdt.flask",
        "gunicorn_zdt.django",
        "gunicorn_zdt.asgi",
        "gunicorn_zdt.wsgi",
        "gunicorn_zdt.probes",
        "gunicorn_zdt.checks",
    ),
    "tools": (
        "gunicorn_zdt.k8s",
        "gunicorn_zdt.check",
        "gunicorn_zdt.drill",
        "gunicorn_zdt.cli",
        "gunicorn_zdt.__main__",
    ),
    "entry points": (
        "gunicorn_zdt",
        "gunicorn_zdt.hooks",
        "gunicorn_zdt.phase",
        "gunicorn_zdt.conf",
    ),
}
#: The runtime's public API: the one name adapters may import from the runtime.
RUNTIME_PUBLIC = "gunicorn_zdt.runtime"
#: room -> the rooms whose modules it may import.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "core": frozenset({"core"}),
    "runtime": frozenset({"core", "runtime"}),
    "adapters": frozenset({"core", "adapters"}),  # + RUNTIME_PUBLIC, checked below
    "tools": frozenset({"core", "tools"}),
    "entry points": frozenset({"core", "runtime", "adapters", "entry points"}),
}
#: The one import against the rooms, and why: ASGI worker classes call no Gunicorn request
#: hook, so the runtime's ``post_worker_init`` hands the loaded app to the ASGI adapter,
#: imported inside the function only when the worker turns out to be ASGI.
EXCEPTIONS = {("gunicorn_zdt.runtime.install", "gunicorn_zdt.asgi.wiring")}
#: Third-party modules allowed only in some rooms (anything else is free to import them).
ONLY_IN: dict[str, frozenset[str]] = {
    "yaml": frozenset({"tools"}),
    "flask": frozenset({"adapters"}),
    "django": frozenset({"adapters"}),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room_of(name: str) -> str | None:
    best: tuple[int, str] | None = None
    for room, prefixes in ROOMS.items():
        for prefix in prefixes:
            inside = name.startswith(prefix + ".") and prefix != "gunicorn_zdt"
            if (name == prefix or inside) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), room)
    return best[1] if best else None


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import in the file, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # ``from . import x`` / ``from pkg import sub``: x may be a submodule.
            for alias in node.names:
                candidate = f"{target}.{alias.name}"
                if _is_module(candidate):
                    found.append((node.lineno, candidate))
    return found


def _is_module(name: str) -> bool:
    if not name.startswith("gunicorn_zdt"):
        return False
    rel = Path(*name.split("."))
    return (ROOT / rel.with_suffix(".py")).exists() or (ROOT / rel / "__init__.py").exists()


SOURCES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_is_in_a_room() -> None:
    homeless = [module_name(p) for p in SOURCES if room_of(module_name(p)) is None]
    assert homeless == [], f"modules in no room of tests/test_layout.py ROOMS: {homeless}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_rooms(path: Path) -> None:
    here = module_name(path)
    room = room_of(here)
    assert room is not None
    broken = []
    for line, target in imports_of(path):
        top = target.partition(".")[0]
        if top in ONLY_IN and room not in ONLY_IN[top]:
            broken.append(
                f"{path.name}:{line}: {target} may be imported only by {set(ONLY_IN[top])}"
            )
        if room == "core" and top != "gunicorn_zdt" and top not in sys.stdlib_module_names:
            broken.append(f"{path.name}:{line}: the core is stdlib only, not {target}")
        if top != "gunicorn_zdt" or target == "gunicorn_zdt":
            continue
        theirs = room_of(target)
        if (room == "adapters" and target == RUNTIME_PUBLIC) or (here, target) in EXCEPTIONS:
            continue
        if theirs not in MAY_IMPORT[room]:
            broken.append(f"{path.name}:{line}: {room} module {here} imports {target} ({theirs})")
    assert broken == []


def test_the_rules_catch_a_runtime_module_importing_the_tools(tmp_path: Path) -> None:
    """The checker above is not vacuous: a made-up runtime module importing the drill fails."""
    assert room_of("gunicorn_zdt.runtime.install") == "runtime"
    assert room_of("gunicorn_zdt.drill.runner") == "tools"
    assert room_of("gunicorn_zdt.checks") == "adapters"
    assert room_of("gunicorn_zdt.check") == "tools"
    assert "tools" not in MAY_IMPORT["runtime"]


def _layout_section() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    assert match, "README.md has no '## Layout' section"
    return match.group(1)


def test_readme_layout_names_every_module() -> None:
    section = _layout_section()
    named = set(re.findall(r"`(gunicorn_zdt/[\w/]+\.py)`", section))
    on_disk = {
        str(p.relative_to(ROOT)) for p in SOURCES if p.name not in ("__init__.py", "__main__.py")
    }
    assert sorted(on_disk - named) == [], "modules missing from README's Layout"
    assert sorted(named - on_disk) == [], "README's Layout names modules that do not exist"


@pytest.mark.parametrize(
    "package",
    sorted({p.parent for p in SOURCES if p.parent != PACKAGE}),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_package_docstring_lists_its_modules(package: Path) -> None:
    init = package / "__init__.py"
    assert init.exists(), f"{package} is not a package"
    doc = ast.get_docstring(ast.parse(init.read_text())) or ""
    modules = sorted(
        p.stem for p in package.glob("*.py") if p.name not in ("__init__.py", "__main__.py")
    )
    missing = [m for m in modules if f":mod:`.{m}`" not in doc]
    assert missing == [], f"{init.relative_to(ROOT)} docstring does not list {missing}"


PUBLIC_IMPORTS = [
    "from gunicorn_zdt.hooks import install, integration_problem",
    "from gunicorn_zdt.conf import *",
    "from gunicorn_zdt.probes import Probes",
    "from gunicorn_zdt.checks import sqlalchemy_ping, CheckRegistry",
    "from gunicorn_zdt.phase import phase, stopping, wait_stopping, wait_stopping_async",
    "from gunicorn_zdt.wsgi import ZdtWSGIMiddleware",
    "from gunicorn_zdt.asgi import ZdtMiddleware",
    "from gunicorn_zdt.health import probes",
    "from gunicorn_zdt import install, Probes, sqlalchemy_ping, stopping, wait_stopping",
    "from gunicorn_zdt.cli import main",
]


@pytest.mark.parametrize("statement", PUBLIC_IMPORTS)
def test_every_documented_import_works(statement: str) -> None:
    """The paths the README, docs and k8s examples name, in a fresh interpreter."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_gunicorn_side_loads_neither_flask_nor_the_tools() -> None:
    """A Gunicorn config's ``install`` import stays light: no Flask, no YAML, no checker."""
    import subprocess

    code = (
        "import sys\n"
        "from gunicorn_zdt.hooks import install\n"
        "import gunicorn_zdt\n"
        "gunicorn_zdt.install\n"
        "loaded = [m for m in ('flask', 'yaml', 'gunicorn_zdt.check', 'gunicorn_zdt.drill',"
        " 'gunicorn_zdt.k8s') if m in sys.modules]\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


def test_module_entry_point_and_console_script_answer() -> None:
    import shutil
    import subprocess

    done = subprocess.run([sys.executable, "-m", "gunicorn_zdt", "--help"], capture_output=True)
    assert done.returncode == 0 and b"check" in done.stdout
    script = shutil.which("gunicorn-zdt", path=str(Path(sys.executable).parent))
    assert script, "the console script is not installed next to this interpreter"
    done = subprocess.run([script, "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip(), done.stderr
