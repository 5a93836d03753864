"""The pure core, shared by the runtime and the tools: stdlib only, no Gunicorn, no Flask.

* :mod:`.settings` - every ``ZDT_*`` setting, declared once (name, default, parser, doc).
* :mod:`.budget` - the timing budget: grace >= preStop + drain maximum + graceful_timeout +
  margin, its errors and warnings.
* :mod:`.plan` - the drain plan a Gunicorn config resolves to (what the runtime runs and
  ``gunicorn-zdt check`` reads).
* :mod:`.drain` - when the adaptive drain ends, from the workers' evidence.
* :mod:`.readiness` - the one readiness/startup decision both probe servers answer with.
* :mod:`.workers` - what a Gunicorn worker class means for the drain (keep-alive, request
  slots, ASGI), decided once.
* :mod:`.refusals` - every reason the hooks refuse to start Gunicorn, as data: the runtime
  raises them and ``gunicorn-zdt check`` reports them, from the same code.
* :mod:`.report` - the termination report's JSON line (marker, fields, parser): the runtime
  logs it, ``gunicorn-zdt drill`` reads it.
"""
