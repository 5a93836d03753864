"""The example service in Django: items in SQLite, a slow endpoint.

Plain SQL through Django's connection (``CREATE TABLE IF NOT EXISTS`` on first use)
instead of models and migrations: several pods of the rehearsal share one SQLite file,
and none of them has to run ``migrate`` first.
"""

from __future__ import annotations

import json
import os
import time

from django.db import IntegrityError, connection, transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

MAX_WORK_MS = 10_000
MAX_ID_LENGTH = 200
_schema_ready = False


def _ensure_schema() -> None:
    global _schema_ready
    if not _schema_ready:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, data TEXT)")
        _schema_ready = True


@require_GET
def index(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"service": "gunicorn-zdt example (Django)", "pid": os.getpid()})


@csrf_exempt
@require_POST
def put_item(request: HttpRequest) -> JsonResponse:
    try:
        payload = json.loads(request.body or b"null")
    except ValueError:
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("id"), str):
        return JsonResponse({"error": 'send a JSON object with a string "id"'}, status=400)
    item_id = payload["id"]
    if not 0 < len(item_id) <= MAX_ID_LENGTH:
        return JsonResponse({"error": f'"id" must be 1 to {MAX_ID_LENGTH} characters'}, status=400)
    _ensure_schema()
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO items (id, data) VALUES (%s, %s)",
                [item_id, json.dumps(payload, sort_keys=True)],
            )
    except IntegrityError:
        return JsonResponse({"id": item_id, "created": False}, status=200)
    return JsonResponse({"id": item_id, "created": True}, status=201)


@require_GET
def get_item(request: HttpRequest, item_id: str) -> JsonResponse:
    _ensure_schema()
    with connection.cursor() as cursor:
        cursor.execute("SELECT data FROM items WHERE id = %s", [item_id])
        row = cursor.fetchone()
    if row is None:
        return JsonResponse({"error": f"no item {item_id!r}"}, status=404)
    return JsonResponse({"id": item_id, "data": json.loads(row[0])})


@require_GET
def work(request: HttpRequest) -> JsonResponse:
    try:
        ms = int(request.GET.get("ms", "0"))
    except ValueError:
        ms = -1
    if not 0 <= ms <= MAX_WORK_MS:
        return JsonResponse({"error": f"ms must be 0 to {MAX_WORK_MS}"}, status=400)
    time.sleep(ms / 1000)
    response = JsonResponse({"slept_ms": ms, "pid": os.getpid()})
    response["X-Worker-Pid"] = str(os.getpid())
    return response
