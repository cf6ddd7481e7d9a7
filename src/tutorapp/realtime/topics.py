"""Who may read a topic: rules registered by the domains that own the topics.

Realtime sits below the domains, so it never imports them: a domain registers a rule
for the first segment of its topics (`booking:<id>` -> "booking") at import time,
e.g. `topics.register("booking", may_read_booking)`. A rule gets the database session,
the reader's user id (None when anonymous) and the topic's segments; a topic with no
rule is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

Rule = Callable[[AsyncSession, "uuid.UUID | None", list[str]], Awaitable[bool]]
_rules: dict[str, Rule] = {}
_read_only: set[str] = set()


def register(prefix: str, rule: Rule, *, client_broadcast: bool = True) -> Rule:
    """`client_broadcast=False`: only the server publishes on these topics."""
    _rules[prefix] = rule
    if not client_broadcast:
        _read_only.add(prefix)
    return rule


def clients_may_broadcast(topic: str) -> bool:
    return topic.split(":", 1)[0] not in _read_only


def rule_for(topic: str) -> Rule | None:
    return _rules.get(topic.split(":", 1)[0])


async def may_read(session: AsyncSession, user_id: uuid.UUID | None, topic: str) -> bool:
    rule = rule_for(topic)
    return rule is not None and await rule(session, user_id, topic.split(":"))


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _own_user_topic(session: AsyncSession, user_id: uuid.UUID | None,
                          parts: list[str]) -> bool:
    """`user:<id>`: only that user."""
    return len(parts) == 2 and user_id is not None and parse_uuid(parts[1]) == user_id


register("user", _own_user_topic)
