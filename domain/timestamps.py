"""ISO 8601 timestamps from callers: always with a time zone, kept as aware UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime

from .errors import InvalidArgument


def parse_timestamp(raw: str, name: str) -> datetime:
    """``raw`` as an aware UTC datetime; an error that names the argument ``name`` when it is not one."""
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        raise InvalidArgument(f"{name} {raw!r} is not an ISO 8601 timestamp.",
                              "Use e.g. 2026-11-26T09:30:00Z, with a time zone.") from None
    if value.tzinfo is None:
        raise InvalidArgument(f"{name} {raw!r} has no time zone.", "Add Z or an offset like +01:00.")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidArgument(f"{name} {raw!r} is out of range.") from None
