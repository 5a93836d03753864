"""``gunicorn-zdt drill``: a local Kubernetes RollingUpdate rehearsal that counts drops.

Offline tool: imports the core and :mod:`gunicorn_zdt.k8s`, never the runtime.

* :mod:`.cli` - the command line (``add_parser``); :mod:`.runner` - one rehearsal, start
  to verdict, every process stopped on every exit path.
* :mod:`.manifest` - the Deployment as the rehearsal models it (read by
  :mod:`gunicorn_zdt.k8s`); :mod:`.rollout` - the Deployment controller's RollingUpdate.
* :mod:`.pods` - pod processes (``PodProcess``) and their process groups; :mod:`.kubelet` - probes,
  preStop, SIGTERM and SIGKILL per pod.
* The Service in front: :mod:`.services` chooses one; :mod:`.balancer` - the in-process
  models (kube-proxy, L7, health-checking); :mod:`.haproxy` and :mod:`.nginx` - real
  proxies from Debian's packages.
* The clients: :mod:`.load` - requests without retries and the write audit;
  :mod:`.gaps` - traffic with idle gaps (the upstream keep-alive race);
  :mod:`.streams` - long-lived server-sent-events clients.
* The verdict: :mod:`.outcomes` - one request's record and failure class;
  :mod:`.pinning` - keep-alive connections still reused after a pod's drain was visible;
  :mod:`.events` - the rehearsal's clock and event log (``EventLog``); :mod:`.report` - text, JSON, SVG.
"""

from .runner import DrillError, DrillOptions, run_drill

__all__ = ["DrillError", "DrillOptions", "run_drill"]
