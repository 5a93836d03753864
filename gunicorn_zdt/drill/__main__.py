"""``python -m gunicorn_zdt.drill [options]``: the drill without the rest of the CLI."""

import sys

from .cli import main

sys.exit(main(["drill", *sys.argv[1:]]))
