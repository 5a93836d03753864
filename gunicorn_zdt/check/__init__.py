"""``gunicorn-zdt check`` and ``timeline``: the pod model, the rules, what is in front.

- :mod:`.app_config`: the Gunicorn config loaded by Gunicorn's own loader, in the
  container's environment.
- :mod:`.pod`: :class:`~.pod.Pod` (workload + Gunicorn config + budget) and
  :class:`~.pod.Finding`, one output line.
- :mod:`.rules`: the rules, grouped by concern; :data:`~.rules.RULES` is their order.
- :mod:`.lb`: load balancer presets (``--lb``); :mod:`.lb_detect`: the load balancers
  the stream's annotations and ingress classes name.
- :mod:`.analysis`: objects read -> pods with their configs loaded.
- :mod:`.commands`: the ``check`` and ``timeline`` commands; :mod:`.timeline`: the
  timeline as text and SVG.

Imports the core (budget, settings, plan, refusals) and :mod:`gunicorn_zdt.k8s`, never
the runtime.
"""
