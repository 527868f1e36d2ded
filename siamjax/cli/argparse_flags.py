"""One flag style for the argparse commands, as in the absl ones (``siamjax-train``, ``siamjax-eval
oneshot``): names with underscores, booleans as ``--flag`` / ``--noflag``."""
from __future__ import annotations

import argparse


def add_bool(parser: argparse.ArgumentParser, name: str, default: bool, help: str, aliases=()) -> None:
    """``--NAME`` sets ``args.NAME`` True, ``--noNAME`` False (default ``default``). ``aliases``: older
    spellings that mean ``--noNAME`` (e.g. ``--no_progress``), accepted but not listed in ``--help``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", dest=name, action="store_true", help=f"{help} (default: {'on' if default else 'off'})")
    group.add_argument(f"--no{name}", dest=name, action="store_false", help=f"the opposite of --{name}")
    for alias in aliases:
        group.add_argument(alias, dest=name, action="store_false", help=argparse.SUPPRESS)
    parser.set_defaults(**{name: default})
