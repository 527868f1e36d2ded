"""``--config`` on the command line: short names of installed configs, and a readable message for a
``--config.KEY=VALUE`` override naming a key the config lacks."""
from __future__ import annotations

import pathlib
import re
import runpy

from siamjax.train.schema import suggest

__all__ = ["config_names", "flat_keys", "resolve_config", "resolve_config_argv", "unknown_override_message"]


def config_dir() -> pathlib.Path:
    """The folder of the installed configs (``configs/`` of the repository, installed as ``siamjax.configs``)."""
    import siamjax.configs

    return pathlib.Path(siamjax.configs.__file__).parent


def config_names() -> list[str]:
    """Short names of the installed configs: ``['att_faces', 'folder', 'omniglot', ...]``."""
    return sorted(p.stem for p in config_dir().glob("*.py") if p.stem not in ("__init__", "common"))


def resolve_config(spec: str) -> str:
    """``FILE[:ARG]`` or an installed config's ``NAME[:ARG]`` -> ``PATH[:ARG]`` (``omniglot:moments64`` ->
    ``.../siamjax/configs/omniglot.py:moments64``); ValueError naming the installed configs otherwise."""
    file, sep, arg = spec.partition(":")
    if pathlib.Path(file).is_file():
        return spec
    if file.endswith(".py") or "/" in file:
        raise ValueError(f"--config={spec!r}: no config file {file} (installed configs, by name: "
                         f"{', '.join(config_names())})")
    installed = config_dir() / f"{file}.py"
    if file in config_names():
        return f"{installed}{sep}{arg}"
    raise ValueError(f"--config={spec!r}: no such file, and no installed config {file!r}; "
                     f"installed configs: {', '.join(config_names())} (or give a path to a config file)")


def resolve_config_argv(argv: list[str]) -> list[str]:
    """``argv`` with the value of ``--config=NAME`` / ``--config NAME`` resolved by :func:`resolve_config`."""
    out = list(argv)
    for i, arg in enumerate(out):
        if arg.startswith("--config="):
            out[i] = "--config=" + resolve_config(arg.split("=", 1)[1])
        elif arg == "--config" and i + 1 < len(out):
            out[i + 1] = resolve_config(out[i + 1])
    return out


def flat_keys(cfg, prefix: str = "") -> list[str]:
    """Dotted paths of every key of a (nested) ConfigDict: ['seed', 'augment.prob', ...]."""
    out = []
    for key in cfg.keys():
        value = cfg[key]
        out.append(prefix + key)
        if hasattr(value, "keys"):
            out += flat_keys(value, f"{prefix}{key}.")
    return out


def config_file_of(argv, default: str = "omniglot") -> tuple[str, str | None]:
    """(file, variant or None) named by ``--config=FILE[:ARG]`` / ``--config FILE[:ARG]`` in ``argv``."""
    spec = default
    for i, arg in enumerate(argv):
        if arg.startswith("--config="):
            spec = arg.split("=", 1)[1]
        elif arg == "--config" and i + 1 < len(argv):
            spec = argv[i + 1]
    file, sep, variant = resolve_config(spec).partition(":")
    return file, (variant if sep else None)


def unknown_override_message(argv, cfg, error: Exception) -> str:
    """'unknown config key --config.learing_rate (did you mean 'learning_rate'?)' for the first
    override in ``argv`` whose key ``cfg`` lacks (``cfg`` None: load it from the ``--config`` file);
    falls back to the error's own text."""
    if cfg is None:
        try:
            file, variant = config_file_of(argv)
            get_config = runpy.run_path(file)["get_config"]
            cfg = get_config() if variant is None else get_config(variant)
        except Exception:  # noqa: BLE001 - only for the hint
            cfg = None
    valid = flat_keys(cfg) if cfg is not None else []
    for arg in argv[1:]:
        m = re.match(r"--config\.([\w.]+)(=|$)", arg)
        if m and m.group(1) not in valid:
            return f"unknown config key --config.{m.group(1)}{suggest(m.group(1), valid)}"
    return str(error).replace("\\n", " ")
