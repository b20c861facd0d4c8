"""Config dataclasses <-> plain dicts, for JSON reports and for checkpoints."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

T = TypeVar("T")


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict form for JSON and for storing inside checkpoints."""
    return dataclasses.asdict(obj)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Rebuild a (possibly nested) config dataclass, ignoring unknown keys.

    Unknown keys are ignored so an older reader can open a newer checkpoint; tuples are
    restored because JSON and torch serialisation turn them into lists.
    """
    kwargs: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for name, value in data.items():
        if name not in fields:
            continue
        sub = _dataclass_for(cls, name)
        if sub is not None and isinstance(value, dict):
            value = from_dict(sub, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def _dataclass_for(owner: type, name: str) -> type | None:
    """The dataclass a field of ``owner`` holds (``X`` or ``X | None``), from its type hints,
    so every config can nest another without a registry here."""
    hint = typing.get_type_hints(owner).get(name)
    candidates = typing.get_args(hint) or (hint,)
    dataclass_types = (c for c in candidates if isinstance(c, type) and dataclasses.is_dataclass(c))
    return next(dataclass_types, None)
