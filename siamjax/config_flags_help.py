"""A readable message for a ``--config.KEY=VALUE`` override naming a key the config file lacks."""
from __future__ import annotations

import re
import runpy

from siamjax.config_schema import suggest

__all__ = ["flat_keys", "unknown_override_message"]


def flat_keys(cfg, prefix: str = "") -> list[str]:
    """Dotted paths of every key of a (nested) ConfigDict: ['seed', 'augment.prob', ...]."""
    out = []
    for key in cfg.keys():
        value = cfg[key]
        out.append(prefix + key)
        if hasattr(value, "keys"):
            out += flat_keys(value, f"{prefix}{key}.")
    return out


def config_file_of(argv, default: str = "configs/omniglot.py") -> str:
    """The file named by ``--config=FILE`` / ``--config FILE`` in ``argv`` (without ``:args``)."""
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1].split(":", 1)[0]
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1].split(":", 1)[0]
    return default


def unknown_override_message(argv, cfg, error: Exception) -> str:
    """'unknown config key --config.learing_rate (did you mean 'learning_rate'?)' for the first
    override in ``argv`` whose key ``cfg`` lacks (``cfg`` None: load it from the ``--config`` file);
    falls back to the error's own text."""
    if cfg is None:
        try:
            cfg = runpy.run_path(config_file_of(argv))["get_config"]()
        except Exception:  # noqa: BLE001 - only for the hint
            cfg = None
    valid = flat_keys(cfg) if cfg is not None else []
    for arg in argv[1:]:
        m = re.match(r"--config\.([\w.]+)(=|$)", arg)
        if m and m.group(1) not in valid:
            return f"unknown config key --config.{m.group(1)}{suggest(m.group(1), valid)}"
    return str(error).replace("\\n", " ")
