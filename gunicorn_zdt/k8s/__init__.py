"""Reading Kubernetes manifests and container commands; nothing here knows the rules.

- :mod:`.documents`: files, folders, stdin, multi-document YAML and ``kind: List`` ->
  :class:`Document`; unreadable input is a one-line :class:`ManifestError`.
- :mod:`.selectors`: label selectors, IntOrString counts, rolling-update limits, the
  autoscaler that scales a workload.
- :mod:`.env`: a container's env as the kubelet resolves it (``env``, ``envFrom``,
  ``valueFrom`` from ConfigMaps and Secrets in the stream, ``$(VAR)`` expansion).
- :mod:`.mesh`: mesh proxies injected by annotation or label, and their drain settings.
- :mod:`.commands`: command lines (shells, ``sleep``, Gunicorn's argv, tini/python).
- :mod:`.workload`: a Deployment's or StatefulSet's pod as :class:`Workload`.

Used by ``gunicorn-zdt check``/``timeline`` (:mod:`gunicorn_zdt.check`) and the drill.
Needs PyYAML.
"""

from __future__ import annotations

from .commands import SHELLS, exec_sleep_seconds, gunicorn_argv
from .documents import (
    READ_KINDS,
    WORKLOAD_KINDS,
    Document,
    ManifestError,
    parse_documents,
    read_documents,
    skipped_kinds,
)
from .selectors import (
    autoscaler_for,
    label_selector_matches,
    resolve_int_or_percent,
    rolling_update_limits,
)
from .workload import (
    DEFAULT_GRACE_PERIOD_SECONDS,
    DEFAULT_MAX_SURGE,
    DEFAULT_MAX_UNAVAILABLE,
    DEFAULT_PROGRESS_DEADLINE_SECONDS,
    PROBE_DEFAULTS,
    Neighbour,
    PreStop,
    Probe,
    Workload,
    workloads,
)

__all__ = [
    "DEFAULT_GRACE_PERIOD_SECONDS",
    "DEFAULT_MAX_SURGE",
    "DEFAULT_MAX_UNAVAILABLE",
    "DEFAULT_PROGRESS_DEADLINE_SECONDS",
    "PROBE_DEFAULTS",
    "READ_KINDS",
    "SHELLS",
    "WORKLOAD_KINDS",
    "Document",
    "ManifestError",
    "Neighbour",
    "PreStop",
    "Probe",
    "Workload",
    "autoscaler_for",
    "exec_sleep_seconds",
    "gunicorn_argv",
    "label_selector_matches",
    "parse_documents",
    "read_documents",
    "resolve_int_or_percent",
    "rolling_update_limits",
    "skipped_kinds",
    "workloads",
]
