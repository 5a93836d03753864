"""``from gunicorn_zdt.hooks import install``: the documented path of :func:`install`.

The hooks live in :mod:`gunicorn_zdt.runtime.install`; this module keeps the path that the
README, the k8s examples and users' configs name.
"""

from gunicorn_zdt.runtime.install import HOOK_NAMES, install, integration_problem

__all__ = ["HOOK_NAMES", "install", "integration_problem"]
