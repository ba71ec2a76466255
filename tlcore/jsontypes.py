"""What a JSON document holds, as types: run.json, the class roster, settings, presets and reports.

A value read from JSON is a `JSONValue`, narrowed with isinstance where it is used; an object
written is a `JSONObject`. Arrays and objects are read-only views (Sequence, Mapping), so a
`dict[str, int]` or a `tuple[int, ...]` is a JSONValue as it stands (json.dumps writes tuples as arrays).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

JSONValue: TypeAlias = str | int | float | bool | Sequence["JSONValue"] | Mapping[str, "JSONValue"] | None
JSONObject: TypeAlias = dict[str, JSONValue]
