#!/usr/bin/env python3
"""Developer entry point; needs only Python 3.11+ (stdlib), like a fresh Debian machine.

    python3 dev.py run       # venv + install, then the example app under Gunicorn on :8080
    python3 dev.py test      # venv + install, then the whole test suite
    python3 dev.py test --oldest   # the same against the oldest Gunicorn/Flask we support
    python3 dev.py mutate    # mutation testing of the pure modules (docs/results/mutation.md)
    python3 dev.py extras    # each extra alone in a clean venv, Gunicorn started with it

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
import tomllib
import urllib.parse
import urllib.request
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
#: The oldest releases we claim to support (setup.cfg's lower bounds), tested in CI.
OLDEST = [
    "gunicorn==27.0.1",
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


def dev_requirements() -> list[str]:
    """The ``dev`` dependency group of pyproject.toml (PEP 735): the test and lint tools.

    Read here rather than with ``pip --group`` (pip >= 25.1) so any pip will do.
    """
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["dependency-groups"]["dev"])


def install(python: Path, oldest: bool) -> None:
    stamp = python.parent.parent / ".installed"
    wanted = (
        (ROOT / "setup.cfg").read_text()
        + (ROOT / "pyproject.toml").read_text()
        + (" ".join(OLDEST) if oldest else "")
    )
    if stamp.exists() and stamp.read_text() == wanted:
        return
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    run([*pip, "-e", str(ROOT), *dev_requirements()])
    if oldest:
        run([*pip, *OLDEST])
    stamp.write_text(wanted)


def run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, cwd=ROOT)


#: Each extra with what proves it works alone: Gunicorn's worker class and a tiny app.
EXTRA_APPS: dict[str, tuple[str, str]] = {
    "gevent": ("gevent", ""),
    "sqlalchemy": (
        "sync",
        "import sqlalchemy\n"
        "from gunicorn_zdt.checks import sqlalchemy_ping\n"
        "probes.add_check('db', sqlalchemy_ping(sqlalchemy.create_engine('sqlite://')))\n",
    ),
    "postgres": ("sync", "import psycopg2  # noqa: F401\n"),
    "django": (
        "sync",
        "from gunicorn_zdt.django import ProbesMiddleware, django_db_ping  # noqa\n",
    ),
    # An ASGI app instead of the Flask one: install() wraps it, so /healthz/ready answers.
    "asgi": (
        "uvicorn_worker.UvicornWorker",
        "async def app(scope, receive, send):\n"
        "    if scope['type'] == 'lifespan':\n"
        "        while (m := await receive())['type'] != 'lifespan.shutdown':\n"
        "            await send({'type': m['type'] + '.complete'})\n"
        "        await send({'type': 'lifespan.shutdown.complete'})\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 404, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b''})\n",
    ),
}
EXTRA_APP = """\
from flask import Flask
from gunicorn_zdt.probes import Probes
app = Flask(__name__)
probes = Probes(app)
{extra}
"""


def extras() -> list[str]:
    """The public extras declared in setup.cfg (a test extra would be a mistake: see issue 9)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return sorted(cfg["options.extras_require"])


def check_extras(names: list[str]) -> int:
    """Install each extra alone in a clean venv; start Gunicorn with it; expect ready 200.

    Catches an extra that misses a dependency the suite's dev tools happen to install
    (``[gevent]`` without ``packaging`` on Gunicorn 27). Uses pip's cache; no dev tools.
    """
    import http.client
    import signal
    import socket
    import time

    failed = []
    for name in names or extras():
        worker, extra_code = EXTRA_APPS.get(name, ("sync", ""))
        with tempfile.TemporaryDirectory(prefix=f"zdt-extra-{name}-") as tmp:
            work = Path(tmp)
            python = ensure_venv(work / "venv")
            pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
            run([*pip, f"{ROOT}[{name}]"])
            (work / "extra_app.py").write_text(EXTRA_APP.format(extra=extra_code))
            (work / "conf.py").write_text(
                "from gunicorn_zdt.hooks import install\n"
                "control_socket_disable = True\n"
                "install(globals())\n"
            )
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            cmd = [str(python.parent / "gunicorn"), "-c", "conf.py", "-k", worker, "-w", "1"]
            cmd += ["-b", f"127.0.0.1:{port}", "extra_app:app"]
            log = work / "gunicorn.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT)
            status, deadline = None, time.monotonic() + 60
            while status != 200 and proc.poll() is None and time.monotonic() < deadline:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                    conn.request("GET", "/healthz/ready")
                    status = conn.getresponse().status
                    conn.close()
                except OSError:
                    time.sleep(0.2)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            verdict = "ok" if status == 200 else f"FAILED (ready: {status})"
            print(f"dev.py extras: [{name}] alone, gunicorn -k {worker}: {verdict}", flush=True)
            if status != 200:
                print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
                failed.append(name)
    return 1 if failed else 0


def mutated_modules() -> list[str]:
    """The pure modules under mutation testing: pyproject.toml [tool.mutmut] only_mutate."""
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["tool"]["mutmut"]["only_mutate"])


def mutate(python: Path, rest: list[str]) -> int:
    """Run mutmut (config: pyproject.toml [tool.mutmut]); print one score line; write the report."""
    bin_dir = python.parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("CI", None)  # mutants that make a test skip are not CI failures
    subprocess.run(["rm", "-rf", str(ROOT / "mutants")], check=True)
    jobs = str(os.cpu_count() or 2)
    run_ = subprocess.run([str(bin_dir / "mutmut"), "run", "--max-children", jobs, *rest],
                          cwd=ROOT, env=env, check=False)  # fmt: skip
    if run_.returncode != 0:  # e.g. the clean test run failed: no mutant was tried
        print(f"mutation score: not measured (mutmut run exited {run_.returncode})")
        return 1
    subprocess.run([str(bin_dir / "mutmut"), "export-cicd-stats"],
                   cwd=ROOT, env=env, check=True, capture_output=True)  # fmt: skip
    stats = json.loads((ROOT / "mutants" / "mutmut-cicd-stats.json").read_text())
    results = subprocess.run([str(bin_dir / "mutmut"), "results"],
                             cwd=ROOT, env=env, check=True, capture_output=True, text=True)  # fmt: skip
    survivors = [line.strip() for line in results.stdout.splitlines() if line.strip()]
    total = stats["total"] - stats.get("skipped", 0)
    killed = stats["killed"]
    pct = 100 * killed / total if total else 0.0
    write_mutation_report(stats, survivors, python)
    print(f"mutation score: {killed} killed of {total} ({pct:.1f} %)")
    return 0


def write_mutation_report(stats: dict[str, int], survivors: list[str], python: Path) -> None:
    """docs/results/mutation.md: the numbers, then each survivor with its diff and a verdict.

    Verdicts (why a survivor is equivalent) live in docs/results/mutation-verdicts.json,
    keyed by the mutant's name; a survivor without one is listed as "not yet explained".
    """
    verdicts_path = ROOT / "docs" / "results" / "mutation-verdicts.json"
    verdicts = json.loads(verdicts_path.read_text()) if verdicts_path.exists() else {}
    total = stats["total"] - stats.get("skipped", 0)
    lines = [
        "# Mutation testing",
        "",
        "`python3 dev.py mutate` runs mutmut (pinned in pyproject.toml's dev group) over the",
        "pure modules with the fast tests that cover them (pyproject.toml `[tool.mutmut]`).",
        "",
        "| modules | killed | survived | timeout | no tests | total | score |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {', '.join(m.removeprefix('gunicorn_zdt/') for m in mutated_modules())} "
        f"| {stats['killed']} | {stats['survived']} | {stats.get('timeout', 0)} "
        f"| {stats.get('no_tests', 0)} | {total} "
        f"| {100 * stats['killed'] / total if total else 0:.1f} % |",
        "",
        "A timeout counts as not killed. Surviving mutants:",
        "",
    ]
    for entry in survivors:
        name = entry.split(":")[0]
        diff = subprocess.run([str(python.parent / "mutmut"), "show", name],
                              cwd=ROOT, capture_output=True, text=True).stdout  # fmt: skip
        body = "\n".join(line for line in diff.splitlines() if line[:1] in "+-" and
                         not line.startswith(("+++", "---")))  # fmt: skip
        verdict = verdicts.get(name, "not yet explained")
        lines += [f"- `{entry}`: {verdict}", "", "  ```diff", *[f"  {x}" for x in body.splitlines()],
                  "  ```", ""]  # fmt: skip
    notes = ROOT / "docs" / "results" / "mutation-notes.md"  # history, kept by hand
    if notes.exists():
        lines += [notes.read_text().rstrip(), ""]
    out = ROOT / "docs" / "results" / "mutation.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines).rstrip() + "\n")


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"run", "test", "mutate", "extras"}:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "extras":
        return check_extras(rest)
    oldest = "--oldest" in rest
    rest = [a for a in rest if a != "--oldest"]
    python = ensure_venv(ROOT / (".venv-oldest" if oldest else ".venv"))
    install(python, oldest)
    if command == "mutate":
        return mutate(python, rest)
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
