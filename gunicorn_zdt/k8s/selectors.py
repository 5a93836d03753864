"""How Kubernetes objects point at pods: label selectors, IntOrString counts, scale targets.

Stdlib only; the Kubernetes semantics are noted where they are not obvious.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .documents import Document, ManifestError

if TYPE_CHECKING:
    from .workload import Workload

__all__ = [
    "autoscaler_for",
    "label_selector_matches",
    "resolve_int_or_percent",
    "rolling_update_limits",
]


def resolve_int_or_percent(value: int | str, total: int, *, round_up: bool) -> int:
    """Kubernetes' IntOrString scaling: ``"25%"`` of ``total``, rounded as the controller does."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number or percentage")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        percent = int(text[:-1])
        scaled, remainder = divmod(percent * total, 100)
        return scaled + (1 if round_up and remainder else 0)
    return int(text)


def rolling_update_limits(
    replicas: int, max_surge: int | str, max_unavailable: int | str
) -> tuple[int, int]:
    """Absolute (maxSurge, maxUnavailable) as the Deployment controller resolves them.

    Surge rounds up, unavailable down, and when both come to 0 unavailable becomes 1
    (deploymentutil.ResolveFenceposts). Raises ValueError for a negative or malformed value.
    """
    resolved = []
    for name, value, round_up in (
        ("maxSurge", max_surge, True),
        ("maxUnavailable", max_unavailable, False),
    ):
        try:
            number = resolve_int_or_percent(value, replicas, round_up=round_up)
        except ValueError:
            raise ValueError(
                f"{name} {value!r} is not a number or percentage; use e.g. 1 or '25%'"
            ) from None
        if number < 0:
            raise ValueError(f"{name} {value!r} must not be negative")
        resolved.append(number)
    surge, unavailable = resolved
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def label_selector_matches(selector: Any, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions) against a pod's labels."""
    if not isinstance(selector, Mapping):
        return False
    match_labels = selector.get("matchLabels") or {}
    expressions = selector.get("matchExpressions") or []
    if not match_labels and not expressions:
        return True  # policy/v1: an empty selector selects every pod
    if any(labels.get(k) != str(v) for k, v in match_labels.items()):
        return False
    for expr in expressions:
        key, op = expr.get("key"), expr.get("operator")
        values = [str(v) for v in expr.get("values") or []]
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op, False)
        if not ok:
            return False
    return True


def autoscaler_for(workload: Workload, docs: Iterable[Document]) -> Document | None:
    """The HorizontalPodAutoscaler whose scaleTargetRef is this workload, if one is in the stream.

    Its ``spec.minReplicas`` (the fewest pods a node drain can meet) must be a whole number
    >= 1 when given, as the API server requires; anything else is a ManifestError.
    """
    for doc in docs:
        if doc.kind != "HorizontalPodAutoscaler" or doc.namespace != workload.doc.namespace:
            continue
        spec = doc.obj.get("spec")
        if not isinstance(spec, Mapping):
            continue
        target = spec.get("scaleTargetRef")
        if (
            isinstance(target, Mapping)
            and target.get("kind") == workload.kind
            and target.get("name") == workload.doc.name
        ):
            least = spec.get("minReplicas")  # None: the API server's default, 1
            if least is not None and (
                isinstance(least, bool) or not isinstance(least, int) or least < 1
            ):
                raise ManifestError(
                    f"{doc.source}: {doc.ref}: spec.minReplicas: {least!r} is not a whole "
                    "number >= 1; write it as a number, e.g. minReplicas: 2"
                )
            return doc
    return None
