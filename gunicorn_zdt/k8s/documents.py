"""Read Kubernetes objects from files, folders and standard input.

Input: files, folders (their ``*.yaml``/``*.yml``/``*.json`` files, not subfolders),
multi-document YAML, ``kind: List`` objects, and ``-`` for standard input (e.g.
``kubectl kustomize k8s/ | gunicorn-zdt check -``, ``helm template ... | gunicorn-zdt
check -``). Output: :class:`Document` objects. Problems with the input itself are raised
as :class:`ManifestError` with a one-line message. Needs PyYAML.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

__all__ = [
    "READ_KINDS",
    "WORKLOAD_KINDS",
    "Document",
    "ManifestError",
    "parse_documents",
    "read_documents",
    "skipped_kinds",
]

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
#: Workload kinds whose pods the check reads (both replace pods one by one on an update).
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
#: Kinds read next to the workloads, or harmless to the termination: no note when skipped.
READ_KINDS = frozenset(
    {
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Ingress",
        "HTTPRoute",
        "ConfigMap",
        "Secret",
        "ServiceAccount",
        "NetworkPolicy",
        "Namespace",
        "Role",
        "RoleBinding",
        "ClusterRole",
        "ClusterRoleBinding",
        "PersistentVolumeClaim",
        "IngressClass",
        "Gateway",
        "GatewayClass",
        "ServiceMonitor",
        "PodMonitor",
        "Kustomization",
        "BackendConfig",
    }
)
STDIN_NAME = "<stdin>"


class ManifestError(Exception):
    """The input cannot be read as Kubernetes objects; ``str()`` is the one-line report."""


@dataclass(frozen=True)
class Document:
    """One Kubernetes object and where it came from."""

    source: str
    obj: Mapping[str, Any]

    @property
    def kind(self) -> str:
        return str(self.obj.get("kind") or "")

    @property
    def name(self) -> str:
        metadata = self.obj.get("metadata")
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        return str(name) if name else "<unnamed>"

    @property
    def namespace(self) -> str | None:
        metadata = self.obj.get("metadata")
        ns = metadata.get("namespace") if isinstance(metadata, Mapping) else None
        return str(ns) if ns else None

    @property
    def ref(self) -> str:
        return f"{self.kind or '<no kind>'}/{self.name}"


def read_documents(
    paths: Iterable[str], stdin: IO[str] | None = None
) -> tuple[list[Document], list[str]]:
    """Every object in ``paths``; plus one error line per path that could not be read."""
    docs: list[Document] = []
    errors: list[str] = []
    for raw in paths:
        try:
            if raw == "-":
                text = (stdin or sys.stdin).read()
                docs.extend(parse_documents(text, STDIN_NAME))
                continue
            path = Path(raw)
            if path.is_dir():
                files = sorted(p for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES)
                if not files:
                    raise ManifestError(
                        f"{raw}: no *.yaml, *.yml or *.json file in this folder; "
                        "pass the folder that holds your Deployment"
                    )
            elif path.exists():
                files = [path]
            else:
                raise ManifestError(f"{raw}: no such file or folder")
            for file in files:
                try:
                    text = file.read_text(encoding="utf-8")
                except UnicodeDecodeError as exc:
                    raise ManifestError(
                        f"{file}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                        f"{exc.start}); pass a YAML or JSON manifest"
                    ) from None
                except OSError as exc:
                    raise ManifestError(f"{file}: cannot read: {exc}") from None
                docs.extend(parse_documents(text, str(file)))
        except ManifestError as exc:
            errors.append(str(exc))
    return docs, errors


def parse_documents(text: str, source: str) -> list[Document]:
    """The objects of a (multi-document) YAML or JSON text; ``kind: List`` is flattened."""
    try:
        loaded = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ManifestError(
            f"{source}: not valid YAML{where}: {problem}; fix the syntax "
            "(or render templates first, e.g. kubectl kustomize DIR | gunicorn-zdt check -)"
        ) from None
    out: list[Document] = []
    for index, obj in enumerate(loaded, start=1):
        if not isinstance(obj, Mapping) or "kind" not in obj:
            raise ManifestError(
                f"{source}: document {index} is not a Kubernetes object (no kind); "
                "pass only manifests, one object per YAML document"
            )
        if obj.get("kind") == "List" and isinstance(obj.get("items"), list):
            out.extend(Document(source, item) for item in obj["items"] if isinstance(item, Mapping))
        else:
            out.append(Document(source, obj))
    return out


def skipped_kinds(docs: Iterable[Document]) -> list[str]:
    """One note per object of a kind the check neither reads nor knows to be harmless."""
    return [
        f"{doc.source}: {doc.ref}: skipped: the check does not read {doc.kind or 'objects without a kind'}"
        for doc in docs
        if doc.kind not in WORKLOAD_KINDS and doc.kind not in READ_KINDS
    ]
