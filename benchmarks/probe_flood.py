"""Probe flood: liveness latency on the probe listener, with and without hostile clients.

Starts a real Gunicorn (2 gthread workers, ``ZDT_PROBE_BIND``) serving the test app, and
sends liveness probes (fresh connection each, as the kubelet does) under, in one run:

* ``none``: no other client;
* ``half-requests``: two attacker processes, each keeping up to N connections open that sent
  half a request line and nothing more (reconnecting whenever the listener drops one), from
  addresses other than the prober's (127.0.0.2, 127.0.0.3), and again from the prober's own
  address (node-local clients share the kubelet's);
* ``connect-close``: a storm of fresh connections closed at once (half FIN, half RST).

It prints probe latency p50/p99/max, probes over the kubelet's 1 s timeout, non-200 answers,
the listener's CPU seconds during the row, and its RSS and fd count before and after.

    python benchmarks/probe_flood.py [--probes 200] [--out docs/results/probe_flood.md]
    python benchmarks/probe_flood.py --code /tmp/zdt-before ...  # another checkout, same clients

The attackers are this file too (own processes, like clients on other machines):

    python benchmarks/probe_flood.py attack half --port P --connections 300 [--source 127.0.0.2]
    python benchmarks/probe_flood.py attack storm --port P --rate 1000 --seconds 3
"""

from __future__ import annotations

import argparse
import errno
import http.client
import os
import re
import selectors
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KUBELET_TIMEOUT = 1.0
HALF_REQUEST = b"GET /healthz/live HTT"  # a request line cut short: the listener must wait


# -- attackers ---------------------------------------------------------------------------


def hold_half_requests(
    port: int, connections: int, source: str, seconds: float, status: Path | None
) -> None:
    """Keep up to ``connections`` half-requests open; reopen each one the listener drops.

    Writes ``held=H opened=O dropped=D`` to ``status`` every 0.2 s (a file a test waits on).
    """
    selector = selectors.DefaultSelector()
    held = opened = dropped = 0
    deadline = time.monotonic() + seconds
    next_report = 0.0

    def open_one() -> None:
        nonlocal opened
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        if source:
            sock.bind((source, 0))
        code = sock.connect_ex(("127.0.0.1", port))
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            return
        opened += 1
        selector.register(sock, selectors.EVENT_WRITE, "connecting")

    while time.monotonic() < deadline:
        while len(selector.get_map()) < connections:
            open_one()
        for key, _ in selector.select(timeout=0.05):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            if key.data == "connecting":
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                    try:
                        sock.send(HALF_REQUEST)
                        selector.modify(sock, selectors.EVENT_READ, "held")
                        held += 1
                        continue
                    except OSError:
                        pass
            else:  # readable: the listener answered or closed it
                held -= 1
                dropped += 1
            selector.unregister(sock)
            sock.close()
        now = time.monotonic()
        if status is not None and now >= next_report:
            next_report = now + 0.2
            _publish(status, f"held={held} opened={opened} dropped={dropped}\n")
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]


def _publish(status: Path, text: str) -> None:
    """Replace the status file at once: a reader never sees it empty or half written."""
    partial = status.with_name(status.name + ".partial")
    partial.write_text(text)
    os.replace(partial, status)


def connect_close_storm(port: int, rate: int, seconds: float, status: Path | None) -> None:
    """``rate`` connections/s for ``seconds``, each closed at once: odd ones with a RST.

    Writes ``done=N failed=F seconds=S finished=0|1`` to ``status`` every 0.2 s and at the end.
    """
    total = int(rate * seconds)
    start = time.monotonic()
    done = failed = 0
    next_report = 0.0
    abort = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a RST

    def report(finished: int) -> None:
        if status is not None:
            elapsed = time.monotonic() - start
            _publish(
                status, f"done={done} failed={failed} seconds={elapsed:.2f} finished={finished}\n"
            )

    for i in range(total):
        now = time.monotonic()
        if now >= next_report:
            next_report = now + 0.2
            report(0)
        delay = start + i / rate - now
        if delay > 0:
            time.sleep(delay)  # the arrival schedule of the storm, not a synchronisation
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if i % 2:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, abort)
            done += 1
        except OSError:
            failed += 1
    report(1)


def attacker(kind: str, port: int, status: Path, **kw: object) -> subprocess.Popen[bytes]:
    """An attacker in its own process (and session), as a client on another machine."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "attack", kind, "--port", str(port)]
    cmd += ["--status", str(status)]
    for name, value in kw.items():
        cmd += [f"--{name}", str(value)]
    return subprocess.Popen(cmd, start_new_session=True)


def stop_attacker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# -- measurement -------------------------------------------------------------------------


def probe(port: int, path: str = "/healthz/live") -> tuple[float, int | None]:
    """(seconds, status or None): one probe on a fresh connection, 1 s timeout like the kubelet."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=KUBELET_TIMEOUT)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        code: int | None = response.status
    except OSError:
        code = None
    finally:
        conn.close()
    return time.perf_counter() - started, code


def rss_bytes(pid: int) -> int:
    """Resident set size (psutil if installed, else /proc)."""
    try:
        import psutil
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for pid {pid}") from None
    return int(psutil.Process(pid).memory_info().rss)


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def listen_overflows() -> int:
    """Connections the kernel dropped because an accept queue was full (whole machine)."""
    names, values = [line.split() for line in Path("/proc/net/netstat").read_text().splitlines()][
        :2
    ]
    return int(values[names.index("ListenOverflows")])


def percentile(values: list[float], q: int) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def start_server(tmp: Path, code: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """(process, probe port, listener pid) of a Gunicorn master with the probe listener."""
    conf = tmp / "flood.conf.py"
    conf.write_text(
        'worker_class = "gthread"\nthreads = 2\nworkers = 2\ncontrol_socket_disable = True\n'
        "from gunicorn_zdt.hooks import install\ninstall(globals())\n"
    )
    log = tmp / "gunicorn.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZDT_", "GUNICORN"))}
    env.update(
        ZDT_PROBE_BIND="127.0.0.1:0",
        PYTHONPATH=str(code),
        DATABASE_URL=f"sqlite:///{tmp / 'flood.db'}",
    )
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    proc = subprocess.Popen(
        [gunicorn, "-c", str(conf), "-b", "127.0.0.1:0", "tests.apps:app"],
        cwd=code,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    pattern = r"probe listener at http://127\.0\.0\.1:(\d+)/\S* \(pid (\d+)\)"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(pattern, log.read_text())
        if m and probe(int(m.group(1)))[1] == 200:
            return proc, int(m.group(1)), int(m.group(2))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"gunicorn did not start:\n{log.read_text()}")


def wait_for(predicate, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def held(status: Path) -> int:
    m = re.search(r"opened=(\d+)", status.read_text() if status.exists() else "")
    return int(m.group(1)) if m else 0


def run_row(
    name: str, port: int, listener: int, tmp: Path, probes: int, connections: int, rate: int
) -> dict[str, object]:
    """Start the row's attackers, wait until they are at full strength, probe, stop them."""
    rss_before, fds_before = rss_bytes(listener), fd_count(listener)
    statuses = [tmp / f"{name}-{i}.status" for i in range(2)]
    procs: list[subprocess.Popen[bytes]] = []
    if name.startswith("half-requests"):
        sources = ["", ""] if name.endswith("same-address") else ["127.0.0.2", "127.0.0.3"]
        for status, source in zip(statuses, sources, strict=True):
            kw: dict[str, object] = {"connections": connections, "seconds": 600}
            if source:
                kw["source"] = source
            procs.append(attacker("half", port, status, **kw))
        # Full strength: each attacker has opened at least its share once.
        wait_for(lambda: all(held(s) >= connections for s in statuses), 20)
    elif name == "connect-close":
        seconds = probes / 20 + 1  # outlasts the probes (20/s)
        procs.append(attacker("storm", port, statuses[0], rate=rate, seconds=seconds))
        time.sleep(0.3)  # let the storm reach its rate; the schedule, not a synchronisation
    cpu_before, overflows_before = cpu_seconds(listener), listen_overflows()
    results = []
    try:
        start = time.perf_counter()
        for i in range(probes):  # 20 probes/s, open loop
            delay = start + i / 20 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            results.append(probe(port))
        cpu = cpu_seconds(listener) - cpu_before
        overflows = listen_overflows() - overflows_before
        elapsed = time.perf_counter() - start
    finally:
        for proc in procs:
            stop_attacker(proc)
    # Back to baseline: every attacker connection closed and expired (deadline 2 s).
    wait_for(lambda: fd_count(listener) <= fds_before, 10)
    latencies = [r[0] for r in results]
    return {
        "row": name,
        "probes": len(results),
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": max(latencies) * 1000,
        "over_1s": sum(x >= KUBELET_TIMEOUT for x in latencies),
        "non_200": sum(code != 200 for _, code in results),
        "cpu_pct": 100 * cpu / elapsed,
        "listen_overflows": overflows,
        "rss_mib": (rss_before / 2**20, rss_bytes(listener) / 2**20),
        "fds": (fds_before, fd_count(listener)),
    }


ROWS = ["none", "half-requests", "half-requests-same-address", "connect-close"]


def run(code: Path, probes: int, connections: int, rate: int) -> list[dict[str, object]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        proc, port, listener = start_server(tmp, code)
        try:
            for name in ROWS:
                rows.append(run_row(name, port, listener, tmp, probes, connections, rate))
                print(rows[-1], flush=True)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    return rows


def table(rows: list[dict[str, object]], label: str) -> str:
    out = [
        "| code | attack | probes | p50 ms | p99 ms | max ms | >= 1 s | non-200 | listener CPU % | SYNs dropped "
        "| RSS MiB before -> after | fds before -> after |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        rss, fds = r["rss_mib"], r["fds"]
        out.append(
            f"| {label} | {r['row']} | {r['probes']} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['max_ms']:.1f} | {r['over_1s']} | {r['non_200']} | {r['cpu_pct']:.0f} | {r['listen_overflows']} | "
            f"{rss[0]:.1f} -> {rss[1]:.1f} | {fds[0]} -> {fds[1]} |"  # type: ignore[index]
        )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    attack = sub.add_parser("attack", help="run one attacker (used by the benchmark and tests)")
    attack.add_argument("kind", choices=["half", "storm"])
    attack.add_argument("--port", type=int, required=True)
    attack.add_argument("--connections", type=int, default=300)
    attack.add_argument("--source", default="")
    attack.add_argument("--rate", type=int, default=1000)
    attack.add_argument("--seconds", type=float, default=3.0)
    attack.add_argument("--status", type=Path)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--connections", type=int, default=300, help="per half-request attacker")
    parser.add_argument("--rate", type=int, default=1000, help="connect-close storm, per second")
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout to run the server from")
    parser.add_argument("--label", default="this")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.command == "attack":
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        if args.kind == "half":
            hold_half_requests(args.port, args.connections, args.source, args.seconds, args.status)
        else:
            connect_close_storm(args.port, args.rate, args.seconds, args.status)
        return
    text = table(run(args.code.resolve(), args.probes, args.connections, args.rate), args.label)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
