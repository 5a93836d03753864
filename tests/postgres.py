"""A real PostgreSQL server for tests: initdb into a temp dir, TCP on 127.0.0.1, random port.

Skips (with the reason) when the server binaries are absent; ``.ci/run`` installs them.
As root it runs the server as the ``postgres`` user (or ``nobody``), since PostgreSQL
refuses to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from gunicorn_zdt.drill.pods import free_port


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


class Postgres:
    def __init__(self) -> None:
        self.initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            raise FileNotFoundError(
                "PostgreSQL server binaries (initdb, pg_ctl) not found; on Debian: "
                "apt-get install postgresql"
            )
        self.dir = Path(tempfile.mkdtemp(prefix="zdt-pg-", dir="/tmp"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user: list[str] = []
        if os.geteuid() == 0:
            account = "postgres" if _has_user("postgres") else "nobody"
            entry = pwd.getpwnam(account)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
            self.dir.chmod(0o755)
            self.user = ["runuser", "-u", account, "--"]
        self._run(self.initdb, "-D", str(self.data), "-U", "zdt", "--auth=trust", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://zdt@127.0.0.1:{self.port}/postgres"

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.user, *cmd], check=True, capture_output=True, cwd=self.dir)

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
        )
        self._run(
            self.pg_ctl,
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "log"),
            "-w",
            "start",
        )  # type: ignore[arg-type]

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "stop")  # type: ignore[arg-type]

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
