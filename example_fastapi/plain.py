"""The FastAPI example as an app without gunicorn-zdt would have it: health routes that
answer 200 while the process runs (the baseline of benchmarks/frameworks.py)."""

from __future__ import annotations

from typing import Any

from example_fastapi.app import app as _example


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "http" and scope["path"].startswith("/healthz/"):
        body = b'{"status": "ok"}'
        headers = [(b"content-type", b"application/json"), (b"content-length", b"16")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await _example(scope, receive, send)
