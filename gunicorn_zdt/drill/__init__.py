"""``gunicorn-zdt drill``: a local Kubernetes RollingUpdate rehearsal that counts drops.

Rooms: :mod:`.manifest` (the Deployment, read by :mod:`gunicorn_zdt.k8s`), :mod:`.pods` (processes and process
groups), :mod:`.balancer` (kube-proxy, L7 and health-checking Service models),
:mod:`.kubelet` (probes, preStop, SIGTERM, SIGKILL), :mod:`.rollout` (the Deployment
controller), :mod:`.load` (clients without retries, write audit), :mod:`.report`
(text, JSON, SVG), :mod:`.runner` (one rehearsal) and :mod:`.cli` (``add_parser``).
"""

from .runner import DrillError, DrillOptions, run_drill

__all__ = ["DrillError", "DrillOptions", "run_drill"]
