"""A readable device description for the session list, from the ``User-Agent`` header.

Parsing needs the optional ``user-agents`` package (``crudauth[useragent]``); without it the
list still shows the raw header, and ``device`` is ``None``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

DeviceKind = Literal["desktop", "mobile", "tablet", "bot", "other"]


class UserAgentInfo(BaseModel):
    """What a browser says about itself. Self-reported: useful to a person, never proof."""

    model_config = ConfigDict(frozen=True)

    browser: str | None = None
    os: str | None = None
    device: str | None = None
    kind: DeviceKind = "other"
    summary: str | None = None


def _family(part: Any) -> str | None:
    family = getattr(part, "family", None)
    if not family or family == "Other":
        return None
    version = getattr(part, "version_string", "")
    return f"{family} {version}".strip()


@lru_cache(maxsize=512)
def describe(user_agent: str | None) -> UserAgentInfo | None:
    """Parse ``user_agent``; ``None`` without a header or without ``user-agents`` installed."""
    if not user_agent:
        return None
    try:
        from user_agents import parse
    except ImportError:  # the optional extra is not installed
        return None
    parsed = parse(user_agent)
    kind: DeviceKind = (
        "bot"
        if parsed.is_bot
        else "tablet"
        if parsed.is_tablet
        else "mobile"
        if parsed.is_mobile
        else "desktop"
        if parsed.is_pc
        else "other"
    )
    browser, os_name = _family(parsed.browser), _family(parsed.os)
    device = parsed.device.family if parsed.device.family not in (None, "", "Other") else None
    summary = " on ".join(p for p in (browser, os_name) if p) or None
    return UserAgentInfo(browser=browser, os=os_name, device=device, kind=kind, summary=summary)
