"""The example app's interface, which the drill and acceptance checks rely on."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time

import pytest

from example_app.app import create_app


@pytest.fixture
def client(tmp_path):
    return create_app(f"sqlite:///{tmp_path / 'items.db'}").test_client()


def test_post_is_201_once_then_200_without_a_second_row(client) -> None:
    assert client.post("/items", json={"id": "a1", "n": 1}).status_code == 201
    again = client.post("/items", json={"id": "a1", "n": 2})
    assert (again.status_code, again.json) == (200, {"id": "a1", "created": False})
    assert client.get("/items/a1").json == {"id": "a1", "data": {"id": "a1", "n": 1}}


def test_missing_item_is_404(client) -> None:
    assert client.get("/items/nope").status_code == 404


@pytest.mark.parametrize(
    "body", [None, [], {"id": 5}, {"id": ""}, {"name": "x"}, {"id": "x" * 201}]
)
def test_bad_item_is_400_with_a_hint(client, body) -> None:
    r = client.post("/items", json=body) if body is not None else client.post("/items", data="x")
    assert r.status_code == 400 and "id" in r.json["error"]


@pytest.mark.parametrize(
    ("ms", "status"), [("0", 200), ("150", 200), ("-1", 400), ("x", 400), ("10001", 400)]
)
def test_work_sleeps_at_least_ms_and_rejects_bad_input(client, ms: str, status: int) -> None:
    started = time.monotonic()
    r = client.get(f"/work?ms={ms}")
    took = time.monotonic() - started
    assert r.status_code == status
    if status == 400:
        assert r.json == {"error": "ms must be a whole number from 0 to 10000"}
    else:
        assert took >= int(ms) / 1000, took  # a lower bound only: a busy machine is slower


def test_readiness_pings_the_database(client) -> None:
    r = client.get("/healthz/ready?verbose")
    assert r.status_code == 200 and r.json["checks"]["database"]["status"] == "ok"


def test_boots_and_is_live_while_the_database_is_unreachable(tmp_path) -> None:
    app = create_app(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}")  # cannot be opened
    client = app.test_client()
    assert client.get("/healthz/live").status_code == 200
    assert client.get("/healthz/ready").status_code == 503
    # Started means loaded and serving: a database outage must not get new pods restarted.
    assert client.get("/healthz/startup").status_code == 200


def _ensure_schema(url: str, barrier, results) -> None:
    from example_app.app import Schema, make_engine

    schema = Schema(make_engine(url))
    barrier.wait(10)
    try:
        schema.ensure()
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(repr(exc)[:300])


def _race_schema_creation(url: str, processes: int = 6) -> list[str]:
    """``processes`` fresh processes create the schema at the same instant, as pods do."""
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    procs = [
        ctx.Process(target=_ensure_schema, args=(url, barrier, results)) for _ in range(processes)
    ]
    for p in procs:
        p.start()
    outcome = [results.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)
    return outcome


def test_workers_of_every_pod_create_the_sqlite_schema_at_once_without_an_error(tmp_path) -> None:
    # Seen in the drill: "table items already exists" / "database is locked" from a sibling.
    for round_ in range(5):
        assert _race_schema_creation(f"sqlite:///{tmp_path / f'race{round_}.db'}") == ["ok"] * 6


def test_schema_waits_out_a_siblings_lock_but_fails_at_once_when_the_database_is_gone(
    tmp_path,
) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DBAPIError

    from example_app.app import Schema

    path = tmp_path / "locked.db"
    sibling = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    sibling.execute("BEGIN EXCLUSIVE")  # a sibling mid-write: every look answers "locked"
    release = threading.Timer(0.3, sibling.execute, ("COMMIT",))
    release.start()
    try:
        # timeout=0: no busy handler, so the schema's own pauses are what waits.
        Schema(create_engine(f"sqlite:///{path}", connect_args={"timeout": 0})).ensure()
    finally:
        release.join()
        sibling.close()
    assert {"items"} <= {
        r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master")
    }

    gone = Schema(create_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'x.db'}"))
    started = time.monotonic()
    with pytest.raises(DBAPIError, match="unable to open"):
        gone.ensure()
    assert time.monotonic() - started < 1.0  # no pauses: 3.5 s of them would be spent here


@pytest.mark.postgres
def test_workers_of_every_pod_create_the_postgres_schema_at_once_without_an_error(postgres) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(postgres.url, isolation_level="AUTOCOMMIT")
    for round_ in range(5):
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS zdt_race{round_}"))
            conn.execute(text(f"CREATE DATABASE zdt_race{round_}"))
        url = postgres.url.rsplit("/", 1)[0] + f"/zdt_race{round_}"
        assert _race_schema_creation(url) == ["ok"] * 6
    admin.dispose()
