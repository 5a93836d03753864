#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+ (stdlib), like a fresh Debian machine.

    python3 dev.py run       # venv + install, then the example app under Gunicorn on :8080
    python3 dev.py test      # venv + install, then the whole test suite
    python3 dev.py test --oldest   # the same against the oldest Gunicorn/Flask we support

The virtual environment lives in ``.venv`` (``.venv-oldest``). Where Debian's
``python3-venv`` is missing (no ``ensurepip``), pip is bootstrapped from its wheel on PyPI.
Extra arguments after ``test`` go to pytest; after ``run``, to Gunicorn.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
#: The oldest releases we claim to support (setup.cfg's lower bounds), tested in CI.
OLDEST = [
    "gunicorn==23.0.0",
    "flask==2.3.3",
    "werkzeug==2.3.8",
    "sqlalchemy==2.0.0",
    "flask-sqlalchemy==3.0.5",
]


def ensure_venv(path: Path) -> Path:
    python = path / "bin" / "python"
    if python.exists():
        return python
    print(f"dev.py: creating {path.name}", flush=True)
    try:
        import ensurepip  # noqa: F401  Debian ships it in python3-venv

        venv.EnvBuilder(with_pip=True).create(path)
    except ImportError:
        venv.EnvBuilder(with_pip=False).create(path)
        bootstrap_pip(python)
    return python


def bootstrap_pip(python: Path) -> None:
    """No ensurepip: run pip straight from its wheel (a wheel is a zip Python can run)."""
    index = "https://pypi.org/pypi/pip/json"
    with urllib.request.urlopen(index, timeout=60) as r:
        release = json.load(r)
    wheel = next(u for u in release["urls"] if u["filename"].endswith(".whl"))
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / wheel["filename"]
        # Mirrors may answer with URLs relative to the index page.
        urllib.request.urlretrieve(urllib.parse.urljoin(index, wheel["url"]), target)
        run([str(python), f"{target}/pip", "install", "-q", str(target)])


def install(python: Path, oldest: bool) -> None:
    stamp = python.parent.parent / ".installed"
    wanted = (ROOT / "setup.cfg").read_text() + (" ".join(OLDEST) if oldest else "")
    if stamp.exists() and stamp.read_text() == wanted:
        return
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run([*pip, "-e", f"{ROOT}[test]"])
    if oldest:
        run([*pip, *OLDEST])
    stamp.write_text(wanted)


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, cwd=ROOT)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test"}:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    oldest = "--oldest" in rest
    rest = [a for a in rest if a != "--oldest"]
    python = ensure_venv(ROOT / (".venv-oldest" if oldest else ".venv"))
    install(python, oldest)
    bin_dir = python.parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    if command == "run":
        cmd = [str(bin_dir / "gunicorn"), "-c", "example_app/gunicorn.conf.py"]
        cmd += [*rest, "example_app.wsgi:app"]
    else:
        cmd = [str(python), "-m", "pytest", *rest]
    os.chdir(ROOT)
    os.execve(cmd[0], cmd, env)  # Gunicorn becomes this process: Ctrl-C and signals reach it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
