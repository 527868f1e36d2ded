"""Settings dataclasses (AffineConfig, ViewConfig, ProjectionSpec) built from plain dicts or ConfigDicts."""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, TypeVar

T = TypeVar("T")


def dataclass_from_mapping(cls: type[T], d: Mapping[str, Any] | Any) -> T:
    """``cls(**d)`` from a dict or ``ml_collections.ConfigDict`` (None: all defaults); missing keys keep
    their defaults, unknown keys raise a ValueError naming them and listing the known ones (field order)."""
    if d is None:
        return cls()
    if hasattr(d, "to_dict"):  # ml_collections.ConfigDict / FrozenConfigDict
        d = d.to_dict()
    d = dict(d)
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {unknown}; known keys are {known}")
    return cls(**d)
