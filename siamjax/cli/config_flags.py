"""``--config`` on the command line: short names of installed configs, and a readable message for a
``--config.KEY=VALUE`` override naming a key the config lacks (or an old flat key: its dotted name now)."""
from __future__ import annotations

import difflib
import pathlib
import re
import runpy

from siamjax.config_layout import new_name
from siamjax.train.schema import suggest

__all__ = ["config_names", "flat_keys", "renamed_override_message", "resolve_config", "resolve_config_argv",
           "unknown_override_message"]


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


def load_config(spec: str):
    """The config ``--config=spec`` names: a file or an installed name, with ``:VARIANT``
    (:func:`resolve_config`), built by its ``get_config``."""
    file, sep, variant = resolve_config(spec).partition(":")
    get_config = runpy.run_path(file)["get_config"]
    return get_config(variant) if sep else get_config()


def _load(argv):
    """The config ``argv``'s ``--config`` names (None when it cannot be loaded)."""
    try:
        file, variant = config_file_of(argv)
        return load_config(file if variant is None else f"{file}:{variant}")
    except Exception:  # noqa: BLE001 - only for the hint
        return None


def renamed_override_message(argv, cfg=None) -> str | None:
    """'--config.learning_rate is --config.optim.learning_rate now (...)' for the first override in ``argv``
    that names an old flat key of a twin config (``cfg``; None: load it from the ``--config`` file), also
    one that is a group now (``--config.data=folder``: ``data.source``); None when there is none."""
    cfg = _load(argv) if cfg is None else cfg
    if cfg is None:
        return None
    valid = flat_keys(cfg)
    groups = {k for k in valid if hasattr(_get(cfg, k), "keys")}
    for arg in argv[1:]:
        m = re.match(r"--config\.([\w.]+)(=|$)", arg)
        if not m or (m.group(1) in valid and m.group(1) not in groups):
            continue
        key, new = m.group(1), new_name(m.group(1))
        if new and new.split(".")[0] in valid:
            return (f"--config.{key} is --config.{new} now (the config's keys are grouped: data, augment, model, "
                    "loss, optim, parallel, eval; siamjax/config_layout.py)")
    return None


def unknown_override_message(argv, cfg, error: Exception) -> str:
    """'unknown config key --config.optim.learing_rate (did you mean 'optim.learning_rate'?)' for the first
    override in ``argv`` whose key ``cfg`` lacks (``cfg`` None: load it from the ``--config`` file), or
    '--config.learning_rate is --config.optim.learning_rate now ...' for an old flat key of a twin config
    (also one that is a group now: ``--config.data=folder``); falls back to the error's own text."""
    cfg = _load(argv) if cfg is None else cfg
    renamed = renamed_override_message(argv, cfg) if cfg is not None else None
    if renamed:
        return renamed
    valid = flat_keys(cfg) if cfg is not None else []
    for arg in argv[1:]:
        m = re.match(r"--config\.([\w.]+)(=|$)", arg)
        if m and m.group(1) not in valid:
            parent, _, name = m.group(1).rpartition(".")
            siblings = [k[len(parent) + 1:] for k in valid if parent and k.rpartition(".")[0] == parent]
            close = difflib.get_close_matches(name, siblings, n=3, cutoff=0.6)
            hint = (f" (did you mean {', '.join(repr(f'{parent}.{c}') for c in close)}?)" if close
                    else suggest(m.group(1), valid))
            return f"unknown config key --config.{m.group(1)}{hint}"
    return str(error).replace("\\n", " ")


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg
