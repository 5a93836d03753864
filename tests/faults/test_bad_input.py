"""Bad input to the probes (both ports), to Gunicorn settings and to the checker/drill CLIs.

Each answer is a clear status or one line; never a traceback, never a hung listener.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import pytest

from tests.faults.helpers import PROBE_ENV, probe_port, status, timed
from tests.support import REPO


def _raw(port: int, data: bytes, timeout: float = 2.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _status_line(raw: bytes) -> str:
    return raw.split(b"\r\n", 1)[0].decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.support import Gunicorn

    g = Gunicorn(tmp=tmp_path_factory.mktemp("bad-input"), env=PROBE_ENV).start()
    g.probe_port = probe_port(g)  # type: ignore[attr-defined]
    yield g
    g.stop()


@pytest.mark.parametrize(
    ("request_bytes", "expect"),
    [
        (b"POST /healthz/live HTTP/1.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
        (b"DELETE /healthz/ready HTTP/1.1\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
        (b"GET /nope HTTP/1.1\r\n\r\n", "HTTP/1.1 404 Not Found"),
        (b"GET /healthz/live?" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n", "HTTP/1.1 414 URI Too Long"),
        (
            b"GET /healthz/live HTTP/1.1\r\nX: " + b"b" * 20000 + b"\r\n\r\n",
            "HTTP/1.1 431 Request Header Fields Too Large",
        ),
        (b"\x16\x03\x01\x02\x00\x01\x00\r\n\r\n", "HTTP/1.1 400 Bad Request"),  # TLS hello
        (b"GET\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET /healthz/ready?" + b"x=1&" * 200 + b" HTTP/1.1\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"GET /healthz/ready?exclude=%zz&exclude=%ff%fe HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK"),
        (b"GET /healthz/ready?verbose&exclude=database HTTP/1.0\r\n\r\n", "HTTP/1.1 200 OK"),
        (b"HEAD /healthz/live HTTP/1.1\r\n\r\n", "HTTP/1.1 200 OK"),
    ],
    ids=[
        "post",
        "delete",
        "unknown-path",
        "huge-query",
        "huge-header",
        "tls-hello",
        "no-target",
        "too-many-params",
        "malformed-escapes",
        "verbose-exclude",
        "head",
    ],
)
def test_listener_answers_bad_requests_with_a_clear_status(server, request_bytes, expect):
    raw = _raw(server.probe_port, request_bytes)
    assert _status_line(raw) == expect, raw[:300]
    assert b"Traceback" not in raw
    if request_bytes.startswith(b"HEAD"):
        assert raw.endswith(b"\r\n\r\n")  # no body


def test_unknown_exclude_names_are_warned_on_both_ports(server):
    for port in (server.port, server.probe_port):
        r, _ = timed(port, "/healthz/ready?exclude=nope&exclude=database")
        assert r is not None and r.status == 200
        assert r.json()["warnings"] == ["unknown check in exclude: 'nope'"], port


def test_app_port_refuses_a_huge_query_and_survives_malformed_ones(server):
    r, _ = timed(server.port, "/healthz/ready?" + "a" * 10000)
    # Gunicorn's limit_request_line: 414 since Gunicorn 24, 400 before.
    assert r is not None and r.status in (400, 414)
    r, _ = timed(server.port, "/healthz/ready?exclude=%ff%zz&verbose=%00")
    assert r is not None and r.status == 200 and b"Traceback" not in r.body
    assert "Traceback" not in server.log()


def test_silent_and_half_open_clients_do_not_block_the_listener(server):
    idle = [socket.create_connection(("127.0.0.1", server.probe_port)) for _ in range(50)]
    try:
        for s in idle[:25]:
            s.sendall(b"GET /healthz/live HTTP/1.1\r\n")  # never finishes its headers
        started = time.monotonic()
        for _ in range(10):
            assert status(server.probe_port, "/healthz/live", timeout=1) == 200
        # Each probe already had 1 s (the kubelet's timeout); together well under a second
        # each, with margin for a busy machine: a blocked listener would time out instead.
        assert time.monotonic() - started < 5.0
    finally:
        for s in idle:
            s.close()


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            {"ZDT_PROBE_BIND": "localhost:http"},
            "Error: gunicorn-zdt: ZDT_PROBE_BIND='localhost:http' is not an address; use PORT "
            "or HOST:PORT, e.g. ZDT_PROBE_BIND=0.0.0.0:8081 (empty or off: no probe listener)",
        ),
        (
            {"ZDT_HEARTBEAT_TIMEOUT_SECONDS": "soon"},
            "Error: gunicorn-zdt: ZDT_HEARTBEAT_TIMEOUT_SECONDS='soon' is not a number; set it "
            "to a number of seconds, e.g. ZDT_HEARTBEAT_TIMEOUT_SECONDS=5",
        ),
    ],
)
def test_bad_listener_settings_stop_the_start_with_one_line(gunicorn, env, line):
    server = gunicorn(env=env).start(wait_ready=False)
    assert server.wait_exit(20) == 1
    assert [x for x in server.log().splitlines() if x.startswith("Error: ")] == [line]
    assert "Traceback" not in server.log()


def test_taken_probe_port_stops_the_start_with_one_line(gunicorn):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = gunicorn(env={"ZDT_PROBE_BIND": f"127.0.0.1:{port}"}).start(wait_ready=False)
        assert server.wait_exit(20) == 1
    errors = [x for x in server.log().splitlines() if x.startswith("Error: ")]
    assert errors == [_taken_line(port)]
    assert "Traceback" not in server.log()


def _taken_line(port: int) -> str:
    return (
        f"Error: gunicorn-zdt: ZDT_PROBE_BIND=127.0.0.1:{port}: cannot listen there (Address "
        "already in use: another process listens on it); pick a free port, e.g. "
        "ZDT_PROBE_BIND=0.0.0.0:8082, or stop the other server"
    )


def test_second_server_with_the_same_probe_bind_is_refused_not_sharing_the_port(gunicorn):
    """The listener sets SO_REUSEPORT for its USR2 successor; another server must not join
    it (probes would be answered by either pod at random)."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    env = {"ZDT_PROBE_BIND": f"127.0.0.1:{port}"}
    first = gunicorn(env=env).start()
    second = gunicorn(env=env).start(wait_ready=False)
    assert second.wait_exit(20) == 1
    errors = [x for x in second.log().splitlines() if x.startswith("Error: ")]
    assert errors == [_taken_line(port)]
    assert "Traceback" not in second.log()
    assert status(port, "/healthz/ready") == 200  # the first one's listener, still alone
    assert first.proc is not None and first.proc.poll() is None


@pytest.mark.parametrize(
    "content",
    [b"garbage: [\n", b"\xba\xad\xf0\x0d" * 50, b"kind: Deployment\nmetadata: {name: x}\n", b""],
    ids=["not-yaml", "binary", "partial-deployment", "empty"],
)
@pytest.mark.parametrize("command", ["check", "drill"])
def test_cli_bad_manifest_is_a_clear_error_never_a_traceback(tmp_path, content, command):
    path = tmp_path / "m.yaml"
    path.write_bytes(content)
    argv = [path.as_posix()] if command == "check" else ["--manifest", path.as_posix()]
    argv += ["--out", str(tmp_path / "out")] if command == "drill" else []
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn_zdt", command, *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    assert str(path) in proc.stderr


def test_cli_check_with_a_config_that_fails_to_import_is_one_line(tmp_path):
    conf = tmp_path / "broken.conf.py"
    conf.write_text("import gunicorn_zdt_no_such_module\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gunicorn_zdt", "check", "--config", str(conf), "k8s/"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert "cannot load the Gunicorn config: ModuleNotFoundError" in proc.stderr
