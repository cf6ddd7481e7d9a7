"""The realtime hub of one app process: its channels by topic, presence, and the broker.

Domains publish through `publish_change` (after their transaction committed, never
on rollback): a `postgres_changes`-shaped event, numbered per topic, logged for
replay and fanned out to every process through the broker.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tutorapp.config import Settings
from tutorapp.core.db import Database
from tutorapp.realtime.broker import Broker, LocalBroker, broker_for
from tutorapp.realtime.protocol import UserBroadcast

if TYPE_CHECKING:
    from tutorapp.realtime.socket import Channel

log = logging.getLogger(__name__)
# Started hubs of this process, newest last: one in production; tests may run several
# app servers in one process, and stopping one leaves the others current.
_running: list[Hub] = []

Metas = dict[str, dict[str, dict[str, Any]]]  # presence key -> phx_ref -> meta


class Hub:
    def __init__(self, settings: Settings, database: Database,
                 broker: Broker | None = None) -> None:
        self.settings, self.database = settings, database
        self.broker = broker or broker_for(settings, database.primary)
        self.node = uuid.uuid4().hex
        self.channels: dict[str, set[Channel]] = {}
        self.presence: dict[str, Metas] = {}
        self.connections = 0

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()  # tests publish into a served app from outside
        await self.broker.start(self._deliver)
        _running.append(self)

    async def stop(self) -> None:
        if self in _running:
            _running.remove(self)
        await self.broker.stop()

    # --- local subscriptions -----------------------------------------------------
    def subscribe(self, channel: Channel) -> None:
        self.channels.setdefault(channel.name, set()).add(channel)

    def unsubscribe(self, channel: Channel) -> None:
        subscribers = self.channels.get(channel.name)
        if subscribers is not None:
            subscribers.discard(channel)
            if not subscribers:
                del self.channels[channel.name]

    async def _deliver(self, message: dict[str, Any]) -> None:
        topic = message.get("topic")
        if not isinstance(topic, str):
            return
        if message.get("kind") == "presence_sync":
            await self._answer_presence_sync(topic)
            return
        if message.get("kind") == "presence":
            self._apply_presence(topic, message)
        elif message.get("kind") == "broadcast":
            message["_decoded"] = _decode_broadcast(message)
        for channel in list(self.channels.get(topic, ())):
            channel.receive(message)

    # --- publishing -------------------------------------------------------------
    async def broadcast(self, topic: str, message: UserBroadcast, *, origin: str | None) -> None:
        payload = (base64.b64encode(message.payload).decode() if message.binary
                   else message.payload)
        await self.broker.publish({
            "kind": "broadcast", "topic": topic, "event": message.event, "payload": payload,
            "binary": message.binary, "binary_push": message.from_binary_push,
            "meta": message.meta, "origin": origin,
        })

    async def presence_diff(self, topic: str, joins: Metas, leaves: Metas) -> None:
        await self.broker.publish({"kind": "presence", "topic": topic,
                                   "joins": _wire(joins), "leaves": _wire(leaves)})

    async def publish_change(self, topics: Iterable[str], change: dict[str, Any]) -> None:
        for topic in topics:
            await self.broker.publish_event(topic, {"kind": "change", "topic": topic,
                                                    "data": change})

    # --- presence ---------------------------------------------------------------
    def presence_state(self, topic: str) -> dict[str, Any]:
        return _wire(self.presence.get(topic, {}))

    async def request_presence(self, topic: str) -> None:
        """A channel joined with presence here: ask every process to announce the
        presences it holds on `topic` (this one may have started after they tracked).
        Clients merge joins by `phx_ref`, so a presence announced twice is one."""
        if not isinstance(self.broker, LocalBroker):
            await self.broker.publish({"kind": "presence_sync", "topic": topic})

    async def _answer_presence_sync(self, topic: str) -> None:
        joins: Metas = {}
        for channel in self.channels.get(topic, ()):
            for key, refs in channel.connection.tracked(channel).items():
                joins.setdefault(key, {}).update(refs)
        if joins:
            await self.presence_diff(topic, joins, {})

    def _apply_presence(self, topic: str, message: dict[str, Any]) -> None:
        state = self.presence.setdefault(topic, {})
        for key, entry in (message.get("leaves") or {}).items():
            for meta in entry.get("metas", []):
                state.get(key, {}).pop(meta.get("phx_ref"), None)
            if key in state and not state[key]:
                del state[key]
        for key, entry in (message.get("joins") or {}).items():
            for meta in entry.get("metas", []):
                state.setdefault(key, {})[meta["phx_ref"]] = meta
        if not state:
            self.presence.pop(topic, None)


def _wire(metas: Metas) -> dict[str, Any]:
    return {key: {"metas": list(refs.values())} for key, refs in metas.items() if refs}


def _decode_broadcast(message: dict[str, Any]) -> UserBroadcast:
    binary = bool(message.get("binary"))
    payload = base64.b64decode(message["payload"]) if binary else message.get("payload")
    return UserBroadcast(topic=message["topic"], event=str(message.get("event")),
                         payload=payload, binary=binary, meta=message.get("meta"),
                         from_binary_push=bool(message.get("binary_push")))


def change(*, table: str, type: str, record: dict[str, Any],
           old_record: dict[str, Any] | None = None, schema: str = "public") -> dict[str, Any]:
    """A `postgres_changes` event body, as Realtime's WALRUS sends it; `columns` are
    derived from the record (names and JSON types)."""
    columns = [{"name": name, "type": _column_type(value)} for name, value in record.items()]
    body: dict[str, Any] = {
        "schema": schema, "table": table, "type": type,
        "commit_timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "columns": columns, "errors": None,
    }
    if type in ("INSERT", "UPDATE"):
        body["record"] = record
    if type in ("UPDATE", "DELETE"):
        body["old_record"] = old_record or {"id": record.get("id")}
    return body


def _column_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int8"
    if isinstance(value, float):
        return "float8"
    if isinstance(value, (dict, list)):
        return "jsonb"
    return "text"


def current() -> Hub | None:
    """The running hub of this process (None in a CLI command or a bare worker)."""
    return _running[-1] if _running else None


async def publish_change(topics: Iterable[str], change: dict[str, Any]) -> None:
    """Publish a domain event from this process (call it after commit). Without a running
    hub (a CLI command, a worker without Redis) there is no one to tell: dropped."""
    running = current()
    if running is None:
        log.debug("realtime: no hub in this process, change on %s dropped", list(topics))
        return
    await running.publish_change(topics, change)
