"""``python -m gunicorn_zdt``: the ``gunicorn-zdt`` command line."""

from gunicorn_zdt.cli import main

raise SystemExit(main())
