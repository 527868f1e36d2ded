"""The trainer's config keys and their types: typos and wrong types fail before any work starts.

:func:`check_keys_and_types` compares an ``ml_collections.ConfigDict`` with :data:`SCHEMA` (key -> accepted
Python types; a nested dict for a nested ConfigDict). The twin trainer's :data:`SCHEMA` is the layout of
:data:`siamjax.config_layout.DEFAULTS` with each default's type (a few keys take more than one); the free
dicts (``model.kwargs``, ``augment.train_views``, ``augment.views``) are checked by their readers. An unknown
key is reported by its dotted name with the closest valid ones; an old flat key (``learning_rate``) with
its name now (``optim.learning_rate``).
"""
from __future__ import annotations

import difflib
from typing import Any, Mapping

from siamjax.config_layout import DEFAULTS, FREE as FREE_PATHS, new_name

__all__ = ["FREE", "SCHEMA", "ConfigError", "check_keys_and_types", "suggest"]

_NUM = (int, float)
_SEQ = (tuple, list)
FREE = object()  # any value (a dict of the encoder's keyword arguments)

# Keys that accept more than their default's type.
_TYPES = {"data.invert": (bool, str), "data.lazy": (bool, str, int), "data.tfds_data_dir": (str, type(None))}


def _schema(value: Any, path: str):
    if path in _TYPES:
        return _TYPES[path]
    if path in FREE_PATHS:
        return FREE
    if isinstance(value, dict):
        return {k: _schema(v, f"{path}.{k}" if path else k) for k, v in value.items()}
    if isinstance(value, tuple):
        return _SEQ
    return type(value)  # bool, int, float (an int is accepted too) or str


SCHEMA: dict[str, Any] = _schema(DEFAULTS, "")


class ConfigError(ValueError):
    """A config key that does not exist or a value of the wrong type."""


def suggest(name: str, valid) -> str:
    """' (did you mean 'a', 'b'?)' for close matches of ``name`` among ``valid``, else ''."""
    close = difflib.get_close_matches(name, list(valid), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""


def _type_names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join("None" if t is type(None) else t.__name__ for t in types)


def _leaves(schema: Mapping, prefix: str = "") -> list[str]:
    out = []
    for key, want in schema.items():
        out.append(prefix + key)
        if isinstance(want, dict):
            out += _leaves(want, f"{prefix}{key}.")
    return out


def _unknown(path: str, key: str, schema: Mapping, root: Mapping, prefix: str) -> str:
    """The message for an unknown key: its name now (an old flat key), else the closest keys of its group
    (dotted), else keys of that name in other groups."""
    if root is SCHEMA and (new := new_name(path)):
        return f"config.{path} is config.{new} now (the config is nested in groups: siamjax/config_layout.py)"
    close = [prefix + c for c in difflib.get_close_matches(key, list(schema), n=3, cutoff=0.6)]
    leaves = _leaves(root)
    close += [p for p in leaves if p.rsplit(".", 1)[-1] == key and p not in close]  # in another group
    if not close:  # close to a key of another group
        near = difflib.get_close_matches(key, [p.rsplit(".", 1)[-1] for p in leaves], n=3, cutoff=0.75)
        close = [p for p in leaves if p.rsplit(".", 1)[-1] in near]
    hint = f" (did you mean {', '.join(repr(c) for c in close[:3])}?)" if close else ""
    return f"unknown config key config.{path}{hint}; valid keys here: {', '.join(sorted(schema))}"


def _check(cfg: Mapping, schema: Mapping, prefix: str, root: Mapping) -> None:
    for key in cfg.keys():
        path = f"{prefix}{key}"
        if key not in schema:
            raise ConfigError(_unknown(path, key, schema, root, prefix))
        want, value = schema[key], cfg[key]
        if want is FREE:
            continue
        if isinstance(want, dict):
            if not hasattr(value, "keys"):
                hint = ""
                if root is SCHEMA and (new := new_name(path)):
                    hint = f" (config.{path} is config.{new} now)"
                raise ConfigError(f"config.{path} must be a group of settings ({', '.join(sorted(want))}), "
                                  f"got {value!r}{hint}")
            _check(value, want, f"{path}.", root)
            continue
        types = want if isinstance(want, tuple) else (want,)
        if isinstance(value, bool) and bool not in types:  # bool is an int subclass: refuse it for numbers
            ok = False
        elif float in types and isinstance(value, int):
            ok = True
        else:
            ok = isinstance(value, types)
        if not ok:
            hint = ""
            if _SEQ[0] in types and isinstance(value, str):
                hint = f" (a tuple of names: --config.{path}=\"('{value}',)\")"
            raise ConfigError(f"config.{path}={value!r} has type {type(value).__name__}; expected "
                              f"{_type_names(types)}{hint}")


def check_keys_and_types(cfg: Mapping, schema: Mapping | None = None) -> None:
    """Raise :class:`ConfigError` naming the first unknown key (dotted, with close matches) or mistyped value.
    ``schema``: another trainer's keys (default: the twin trainer's :data:`SCHEMA`)."""
    root = SCHEMA if schema is None else schema
    _check(cfg, root, "", root)
