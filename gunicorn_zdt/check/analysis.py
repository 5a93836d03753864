"""From objects read to pods checked: each workload with its Gunicorn config loaded.

What ``check`` and ``timeline`` share once the manifests are read (the tests call
:func:`analyse_documents` in memory).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from ..k8s import Document, ManifestError, Workload, read_documents, skipped_kinds, workloads
from . import app_config
from .app_config import ConfigLoadError, GunicornView, local_config_path
from .lb import LoadBalancer
from .pod import Pod, make_pod

__all__ = ["Analysis", "analyse", "analyse_documents"]


@dataclass
class Analysis:
    """The pods to check, and why the rest could not be."""

    pods: list[Pod]
    errors: list[str]  # input that could not be read: exit 2
    notes: list[str] = dataclasses.field(default_factory=list)  # objects skipped, no effect


def analyse_documents(
    docs: Sequence[Document],
    config: str | None,
    min_propagation: float | None = None,
    lb: LoadBalancer | None = None,
    image_env: Mapping[str, str] | None = None,
) -> Analysis:
    """A :class:`Pod` per Deployment or StatefulSet in ``docs``, its Gunicorn config loaded.

    What ``check`` and ``timeline`` do once the manifests are read: each workload's
    container command and env go to Gunicorn's loader (``config`` overrides the command's
    ``-c``, a ``-c`` under the container's ``workingDir`` is read from here), over
    ``image_env`` (``--env``: the image's ENV, which the manifest's env overrides); a
    broken workload, a wrapper script without ``config`` or a config that does not load is
    an error line instead of a pod.
    """
    errors: list[str] = []
    found: list[Workload] = []
    for item in workloads(docs):
        if isinstance(item, ManifestError):
            errors.append(str(item))
        else:
            found.append(item)
    views: dict[Any, GunicornView] = {}
    pods = []
    for w in found:
        found_argv = app_config.gunicorn_argv(w.command, w.args)
        if found_argv is None and w.command and config is None:
            shown = " ".join([*w.command, *(w.args or [])])
            errors.append(
                f"{w.source}: {w.ref}: the container's command ({shown}) does not start gunicorn "
                "itself (a wrapper script?), so the check cannot see which Gunicorn config the "
                "pod runs; pass it with --config (e.g. --config gunicorn.conf.py), and make the "
                "script end with exec gunicorn ..."
            )
            continue
        argv = _local_argv(found_argv or [], w.working_dir)
        env = {**(image_env or {}), **w.base_env, **w.env}
        key = (tuple(argv), tuple(sorted(env.items())), config)
        try:
            if key not in views:
                views[key] = app_config.load(argv, env, config)
        except ConfigLoadError as exc:
            message = f"{w.source}: {w.ref}: {exc}"
            if message not in errors:
                errors.append(message)
            continue
        try:
            pods.append(make_pod(w, views[key], docs, min_propagation, lb))
        except ManifestError as exc:  # an object the workload depends on (its autoscaler)
            errors.append(str(exc))
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a malformed neighbour
            errors.append(
                f"{w.source}: {w.ref}: an object that selects or routes to these pods cannot be "
                f"read ({type(exc).__name__}: {exc}); check the stream with kubectl apply "
                "--dry-run=client"
            )
    return Analysis(pods, errors, skipped_kinds(docs))


def analyse(
    paths: Sequence[str],
    config: str | None,
    min_propagation: float | None,
    stdin: IO[str] | None,
    lb: LoadBalancer | None = None,
    image_env: Mapping[str, str] | None = None,
) -> Analysis:
    docs, errors = read_documents(paths, stdin)
    analysis = analyse_documents(docs, config, min_propagation, lb, image_env)
    analysis.errors[:0] = errors  # the files that could not be read come first
    if not analysis.pods and not analysis.errors:
        analysis.errors.append(
            f"{' '.join(paths)}: no Deployment or StatefulSet found; pass the files or folder "
            "that hold your Deployment (or - for kustomize/helm output on stdin)"
        )
    return analysis


def _local_argv(argv: list[str], working_dir: str | None) -> list[str]:
    """Gunicorn's argv with its ``-c`` path as a path here (see local_config_path)."""
    out = list(argv)
    for i, word in enumerate(out):
        if word in {"-c", "--config"} and i + 1 < len(out):
            out[i + 1] = local_config_path(out[i + 1], working_dir)
        elif word.startswith("--config="):
            out[i] = "--config=" + local_config_path(word.split("=", 1)[1], working_dir)
    return out
