"""A readable device name from a User-Agent header, for session lists and notices."""

from __future__ import annotations

from functools import lru_cache

from ua_parser import parse


@lru_cache(maxsize=512)
def describe_device(user_agent: str | None) -> str:
    if not user_agent:
        return "Unknown device"
    result = parse(user_agent)
    browser = result.user_agent.family if result.user_agent else None
    system = result.os.family if result.os else None
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or user_agent[:60]
