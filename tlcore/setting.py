"""A config field's declaration for people: its words, bounds, flag and widget, said once beside the field.

`setting(default, label=...)` is a dataclass field whose metadata the rest derive from: validation
(`check_fields`), the Runs page's names (`setting_names`), the command line's generic flags
(tlcore.cli.options) and the Model page's generic training-option widgets (dashboard.model.setting_widgets).
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    # What a config's field holds: a number, a flag, a word, a tuple of sizes, a nested config, or None (off).
    FieldValue = bool | int | float | str | tuple[int, ...] | DataclassInstance | None

T = TypeVar("T")
SETTING = "setting"  # the metadata key
# Where the dashboard sets a field: a widget of its own (pages and panels draw it), one drawn from the
# declaration (dashboard.model.setting_widgets), or nowhere (a record's fact, such as the backbone).
OWN_WIDGET, DECLARED_WIDGET, NO_WIDGET = "own", "declared", "none"


@dataclass(frozen=True)
class Setting:
    """How a person meets one field. `help` may name `{default}` (the command line fills it in)."""

    label: str  # lower-case words: the Runs page's name for it, and (capitalised) its widget's label
    help: str = ""
    low: float | None = None  # the smallest value allowed
    low_open: bool = False  # `low` itself not allowed ("must be positive")
    high: float | None = None
    high_open: bool = False
    choices: tuple[str, ...] = ()
    flag: bool = False  # a generic command-line flag, --name-with-dashes (the others are made by hand)
    order: int = 1000  # where that flag stands in --help among the config's options (hand-made ones too)
    widget: str = OWN_WIDGET  # OWN_WIDGET | DECLARED_WIDGET | NO_WIDGET
    step: float | None = None  # a declared widget's step
    tip: str = ""  # a declared widget's help, where it says more than `help`


def setting(default: T, info: Setting) -> T:
    """A dataclass field with this default, declaring `info`."""
    return dataclasses.field(default=default, metadata={SETTING: info})


def declared(cls: type) -> Iterator[tuple[str, Setting]]:
    """(name, Setting) of each field of a config dataclass that declares one, in declaration order."""
    return iter(_declared(cls))


@functools.cache
def _declared(cls: type) -> tuple[tuple[str, Setting], ...]:
    return tuple((f.name, f.metadata[SETTING]) for f in dataclasses.fields(cls) if SETTING in f.metadata)


@functools.cache  # every TrainConfig checks its fields: resolving annotations each time cost 3 ms a config
def value_type(cls: type, name: str) -> tuple[type, bool]:
    """(the field's type, whether None is allowed) from its annotation: int, float, bool or str."""
    hint = typing.get_type_hints(cls)[name]
    if typing.get_origin(hint) not in (typing.Union, types.UnionType):
        return typing.get_origin(hint) or hint, False  # tuple[int, ...] is a tuple
    args = typing.get_args(hint)
    return next(a for a in args if a is not type(None)), type(None) in args


def check_fields(config: DataclassInstance, prefix: str = "") -> None:
    """ValueError naming the first field whose value its Setting refuses ("name must ... Received: name=v")."""
    cls = type(config)
    for name, info in declared(cls):
        value = getattr(config, name)
        kind, optional = value_type(cls, name)
        if value is None and optional:
            continue
        _check_value(f"{prefix}{name}", name, value, kind, info)


def _check_value(title: str, name: str, value: FieldValue, kind: type, info: Setting) -> None:
    received = f"Received: {name}={value!r}"
    if kind is bool:
        _require(isinstance(value, bool), f"{title} must be true or false. {received}")
        return
    number = not isinstance(value, bool) and isinstance(value, numbers.Real)  # numpy's numbers too
    if kind is int:
        _require(number and isinstance(value, numbers.Integral), f"{title} must be a whole number. {received}")
    if kind is float:
        _require(number, f"{title} must be a number. {received}")
    if info.choices:
        _require(value in info.choices, f"{title} must be one of {info.choices}. {received}")
    if not isinstance(value, numbers.Real):
        return
    value = float(value)
    if info.low is not None and info.high is not None:
        above = value > info.low if info.low_open else value >= info.low
        below = value < info.high if info.high_open else value <= info.high
        if info.low_open or info.high_open:
            span = f"in {'(' if info.low_open else '['}{info.low:g}, {info.high:g}{')' if info.high_open else ']'}"
        else:
            span = f"between {info.low:g} and {info.high:g}"
        _require(above and below, f"{title} must be {span}. {received}")
    elif info.low is not None:
        if info.low_open:
            _require(value > info.low, f"{title} must be positive. {received}")
        else:
            _require(value >= info.low, f"{title} must be at least {info.low:g}. {received}")


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def setting_names(cls: type, prefix: str = "") -> dict[str, str]:
    """{dotted field name: label} of a config and the configs it nests (their fields declare theirs)."""
    names: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        if SETTING in f.metadata:
            names[f"{prefix}{f.name}"] = f.metadata[SETTING].label
        kind, _ = value_type(cls, f.name)
        if dataclasses.is_dataclass(kind):
            names.update(setting_names(kind, f"{prefix}{f.name}."))
    return names
