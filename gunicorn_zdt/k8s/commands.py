"""Container command lines: what a container runs, read from its words.

Written once here, used by the manifest reader (preStop ``sleep``), the Gunicorn config
loader (Gunicorn's own argv inside a wrapper or a shell) and the ``pid1`` rule. Stdlib only.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "SHELLS",
    "exec_sleep_seconds",
    "gunicorn_argv",
    "python_runs_gunicorn",
    "tini_process_group",
]

#: Shells whose ``-c`` runs a command line (``sh -c "exec gunicorn ..."``).
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "busybox"})


def exec_sleep_seconds(command: list[str]) -> float | None:
    """``["sleep", "5"]`` or ``["/bin/sh", "-c", "sleep 5"]`` -> 5.0; anything else -> None."""
    words = command
    if len(command) >= 3 and Path(command[0]).name in SHELLS and command[1] == "-c":
        try:
            words = shlex.split(command[2])
        except ValueError:
            return None
    if len(words) == 2 and Path(words[0]).name == "sleep":
        try:
            return float(words[1].rstrip("s"))
        except ValueError:
            return None
    return None


def gunicorn_argv(command: Sequence[str] | None, args: Sequence[str] | None) -> list[str] | None:
    """Gunicorn's own arguments in a container's command + args; None when it is not there.

    Handles ``gunicorn ...``, ``python -m gunicorn ...``, wrappers (``tini -- gunicorn``)
    and shell form (``sh -c "exec gunicorn ..."``).
    """
    words = [*(command or []), *(args or [])]
    if len(words) >= 3 and Path(words[0]).name in SHELLS and words[1] == "-c":
        try:
            words = shlex.split(words[2])
        except ValueError:
            return None
    for i, word in enumerate(words):
        if Path(word).name == "gunicorn":  # also the module of ``python -m gunicorn``
            rest = words[i + 1 :]
            # the end of a shell command line: gunicorn ... && other / ; other
            for j, token in enumerate(rest):
                if token in {"&&", "||", ";", "|"}:
                    return rest[:j]
            return rest
    return None


def tini_process_group(options: set[str]) -> bool:
    """tini's ``-g`` among its own options, alone or in a cluster (``-sg``; ``-pg`` is -p g)."""
    for option in sorted(options):
        if option.startswith("--"):
            continue
        for letter in option[1:]:
            if letter == "g":
                return True
            if letter in "pek":  # these take a value: the rest of the word is it
                break
    return False


def python_runs_gunicorn(words: Sequence[str]) -> bool:
    """``python [OPTIONS] -m gunicorn ...``: the interpreter process is Gunicorn's arbiter."""
    rest = iter(words[1:])
    for word in rest:
        if word == "-m":
            return next(rest, None) == "gunicorn"
        if not word.startswith("-"):
            return False  # a script: it may or may not exec gunicorn
        if word in {"-W", "-X"}:  # the options that take a separate value
            next(rest, None)
    return False
