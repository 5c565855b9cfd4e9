"""Turning read models and figures into what the command line prints."""

from __future__ import annotations

import json
from typing import Any

from engine import to_plain


def as_json(value: Any) -> str:
    """One line of JSON; decimals and times as strings, never floats."""
    return json.dumps(to_plain(value), separators=(",", ":"), sort_keys=False)


def as_text(fields: dict[str, Any]) -> str:
    """``name: value`` lines, aligned."""
    plain = to_plain(fields)
    assert isinstance(plain, dict)
    width = max((len(name) for name in plain), default=0)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in plain.items())
