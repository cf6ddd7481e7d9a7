"""`/realtime/v1/websocket`: one connection, its channels, the Phoenix channel protocol.

Answers as Supabase Realtime does (RealtimeChannel / UserSocket of supabase/realtime):
`phx_join` -> `phx_reply` ok `{postgres_changes: [...ids]}` or error `{reason}`;
heartbeat on `phoenix`; `access_token` re-checks the token and the topic rule; a
channel whose token expires gets a `system` error message and `phx_close`; quotas
answer with Realtime's messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
import zlib
from dataclasses import dataclass, field
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from starlette.websockets import WebSocket, WebSocketDisconnect

from tutorapp.realtime import principal, topics
from tutorapp.realtime.hub import Hub
from tutorapp.realtime.principal import Identity, Refused
from tutorapp.realtime.protocol import (
    VSN_1,
    VSN_2,
    Frame,
    FrameError,
    UserBroadcast,
    decode,
    encode,
    encode_broadcast,
)

log = logging.getLogger(__name__)
PREFIX = "realtime:"
SEND_QUEUE = 1000  # frames waiting for a slow client before it is disconnected


@dataclass(eq=False)
class Binding:
    id: int
    event: str
    schema: str | None
    table: str | None
    filter: str | None

    def matches(self, data: dict[str, Any]) -> bool:
        if self.event not in ("*", data.get("type")):
            return False
        if self.schema not in (None, "*", data.get("schema")):
            return False
        if self.table not in (None, "*", data.get("table")):
            return False
        if self.filter:
            column, _, rest = self.filter.partition("=")
            op, _, value = rest.partition(".")
            record = data.get("record") or data.get("old_record") or {}
            return op == "eq" and str(record.get(column)) == value
        return True


def binding_id(params: dict[str, Any]) -> int:
    """A stable id for a postgres_changes filter (Realtime uses `:erlang.phash2(params)`)."""
    canonical = repr(sorted((str(k), str(v)) for k, v in params.items()))
    return zlib.crc32(canonical.encode()) & 0x7FFFFFF


@dataclass(eq=False)
class Channel:
    connection: Connection
    topic: str  # "realtime:<name>"
    join_ref: str | None
    identity: Identity
    self_broadcast: bool = False
    ack: bool = False
    presence_key: str = ""
    presence_enabled: bool = False
    bindings: list[Binding] = field(default_factory=list)
    last_seq: int = 0
    replaying: bool = False
    held: list[dict[str, Any]] = field(default_factory=list)
    tracked_ref: str | None = None
    tracked_meta: dict[str, Any] | None = None
    expiry: asyncio.TimerHandle | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def name(self) -> str:
        return self.topic[len(PREFIX):]

    def push(self, event: str, payload: Any) -> None:
        self.connection.send(Frame(topic=self.topic, event=event, payload=payload,
                                   join_ref=self.join_ref))

    def receive(self, message: dict[str, Any]) -> None:
        """A message fanned out on this channel's topic (called by the hub)."""
        kind = message.get("kind")
        if kind == "change":
            if self.replaying:
                self.held.append(message)
            else:
                self.deliver_change(message)
        elif kind == "broadcast":
            if message.get("origin") == self.id and not self.self_broadcast:
                return
            encoded = message.setdefault("_encoded", {})  # once per serializer, not per socket
            vsn = self.connection.vsn
            if vsn not in encoded:
                encoded[vsn] = encode_broadcast(message["_decoded"], self.topic, vsn)
            frame = encoded[vsn]
            if frame is not None:
                self.connection.send_raw(frame)
        elif kind == "presence" and self.presence_enabled:
            self.push("presence_diff", {"joins": message.get("joins") or {},
                                        "leaves": message.get("leaves") or {}})

    def deliver_change(self, message: dict[str, Any]) -> None:
        seq = int(message.get("seq") or 0)
        if seq <= self.last_seq:
            return  # already delivered (replayed, or a duplicate)
        self.last_seq = seq
        data = message["data"]
        ids = [b.id for b in self.bindings if b.matches(data)]
        if ids:
            record = dict(data.get("record") or {})
            body = data | {"seq": seq}
            if record:
                body["record"] = record | {"realtime_seq": seq}
            self.push("postgres_changes", {"ids": ids, "data": body})


class Connection:
    def __init__(self, hub: Hub, websocket: WebSocket, vsn: str,
                 cookie_identity: Identity | None) -> None:
        self.hub, self.websocket, self.vsn = hub, websocket, vsn
        self.settings = hub.settings
        self.cookie_identity = cookie_identity
        self.channels: dict[str, Channel] = {}
        self.queue: asyncio.Queue[str | bytes | None] = asyncio.Queue(SEND_QUEUE)
        self.window = (0, 0, 0)  # second, joins, messages
        self.closing = False
        self.tasks: set[asyncio.Future[None]] = set()

    # --- sending ----------------------------------------------------------------
    def send(self, frame: Frame) -> None:
        self.send_raw(encode(frame, self.vsn))

    def send_raw(self, data: str | bytes) -> None:
        if self.closing:
            return
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            log.warning("realtime: slow client disconnected (%d frames queued)", SEND_QUEUE)
            self.close()

    def close(self) -> None:
        self.closing = True
        with contextlib.suppress(asyncio.QueueFull):
            self.queue.put_nowait(None)

    def reply(self, frame: Frame, status: str, response: dict[str, Any] | None = None) -> None:
        self.send(Frame(topic=frame.topic, event="phx_reply", ref=frame.ref,
                        join_ref=frame.join_ref,
                        payload={"status": status, "response": response or {}}))

    async def writer(self) -> None:
        try:
            while (data := await self.queue.get()) is not None:
                if isinstance(data, bytes):
                    await self.websocket.send_bytes(data)
                else:
                    await self.websocket.send_text(data)
        finally:
            # closing (a quota, a slow client, the end): also ends the reader's receive()
            self.closing = True
            with contextlib.suppress(Exception):
                await self.websocket.close()

    # --- quotas -----------------------------------------------------------------
    def count(self, *, join: bool = False) -> str | None:
        """Count a message (or a join) in this second; the quota error, if over."""
        now = int(time.monotonic())
        second, joins, messages = self.window
        if second != now:
            second, joins, messages = now, 0, 0
        joins, messages = joins + join, messages + (not join)
        self.window = (second, joins, messages)
        if join and joins > self.settings.realtime_max_joins_per_second:
            return "ClientJoinRateLimitReached: Too many joins per second"
        if not join and messages > self.settings.realtime_max_messages_per_second:
            return "Too many messages per second"
        return None

    # --- receiving --------------------------------------------------------------
    async def run(self) -> None:
        writer = asyncio.create_task(self.writer())
        try:
            while not self.closing:
                try:
                    message = await asyncio.wait_for(
                        self.websocket.receive(), self.settings.realtime_idle_timeout_seconds)
                except TimeoutError:
                    break  # no heartbeat: Phoenix's transport timeout
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes") if message.get("bytes") is not None \
                    else message.get("text")
                if data is None:
                    continue
                if len(data) > self.settings.realtime_max_payload_bytes + 1024:
                    self.close()  # Realtime's transport refuses oversized frames the same way
                    break
                try:
                    frame = decode(data, self.vsn)
                except FrameError as exc:
                    log.info("realtime: bad frame: %s", exc)
                    continue
                try:
                    await self.handle(frame)
                except (OSError, ConnectionError, SQLAlchemyError, RedisError) as exc:
                    # the broker or the database is unavailable: this frame fails, the
                    # socket stays (the client's ack times out or gets this error)
                    log.warning("realtime: %s failed: %s", frame.event, exc)
                    if frame.ref is not None:
                        self.reply(frame, "error", {"reason": "Realtime is unavailable, "
                                                              "please retry"})
        except WebSocketDisconnect:
            pass
        finally:
            self.closing = True
            for channel in list(self.channels.values()):
                await self.leave(channel)
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer

    async def handle(self, frame: Frame) -> None:
        if frame.topic == "phoenix":
            if frame.event == "heartbeat":
                self.reply(frame, "ok")
            return
        if frame.event == "phx_join":
            await self.join(frame)
            return
        channel = self.channels.get(frame.topic)
        if channel is None or channel.join_ref != (frame.join_ref or channel.join_ref):
            # Phoenix.Socket: a message for a channel this socket has not joined
            if frame.event == "phx_leave":
                self.reply(frame, "ok")
            else:
                self.reply(frame, "error", {"reason": "unmatched topic"})
            return
        if problem := self.count():
            await self.shutdown(channel, problem)
            return
        if channel.identity.expires_at is not None and channel.identity.expires_at <= time.time():
            await self.shutdown(channel, "Token has expired 0 seconds ago")
            return
        if frame.event == "phx_leave":
            self.reply(frame, "ok")
            await self.leave(channel)
            channel.push("phx_close", {})
        elif frame.event == "access_token":
            await self.refresh_token(channel, frame)
        elif frame.event == "broadcast":
            await self.broadcast(channel, frame)
        elif frame.event == "presence":
            await self.presence(channel, frame)
        # anything else: Realtime logs "Unexpected message from client" and ignores it

    # --- joining ----------------------------------------------------------------
    async def join(self, frame: Frame) -> None:
        payload = _map(frame.payload)
        config = _map(payload.get("config"))
        if frame.topic in self.channels:  # Phoenix closes the duplicate, then joins again
            old = self.channels[frame.topic]
            await self.leave(old)
            old.push("phx_close", {})
        if problem := self.count(join=True):
            self.reply(frame, "error", {"reason": problem})
            self.close()  # Realtime disconnects a client over its join rate
            return
        if not frame.topic.startswith(PREFIX) or frame.topic == PREFIX:
            self.reply(frame, "error",
                       {"reason": "TopicNameRequired: You must provide a topic name"})
            return
        if len(self.channels) >= self.settings.realtime_max_channels_per_client:
            self.reply(frame, "error", {"reason": "ChannelRateLimitReached: Too many channels"})
            return
        name = frame.topic[len(PREFIX):]
        token = payload.get("access_token") or payload.get("user_token")
        try:
            identity = await self.authorize(name, token if isinstance(token, str) else None)
        except Refused as exc:
            self.reply(frame, "error", {"reason": str(exc)})
            return
        broadcast, presence = _map(config.get("broadcast")), _map(config.get("presence"))
        channel = Channel(
            connection=self, topic=frame.topic, join_ref=frame.join_ref or frame.ref,
            identity=identity, self_broadcast=bool(broadcast.get("self")),
            ack=bool(broadcast.get("ack")),
            presence_key=str(presence.get("key") or "") or str(uuid.uuid1()),
            presence_enabled=bool(presence.get("enabled", True)),
        )
        reply: list[dict[str, Any]] = []
        for params in config.get("postgres_changes") or []:
            if not isinstance(params, dict):
                continue
            bid = binding_id(params)
            channel.bindings.append(Binding(id=bid, event=str(params.get("event", "*")),
                                            schema=params.get("schema"),
                                            table=params.get("table"),
                                            filter=params.get("filter")))
            reply.append(params | {"id": bid})
        replay = _map(broadcast["replay"]) if "replay" in broadcast else None
        channel.replaying = replay is not None
        self.channels[frame.topic] = channel
        self.hub.subscribe(channel)  # live events are held while the log is replayed
        self.reply(frame, "ok", {"postgres_changes": reply} if reply else {})
        self.arm_expiry(channel)
        if reply:
            channel.push("system", {"extension": "postgres_changes", "status": "ok",
                                    "message": "Subscribed to PostgreSQL", "channel": name})
        if channel.presence_enabled:
            channel.push("presence_state", self.hub.presence_state(name))
            await self.hub.request_presence(name)
        if replay is not None:
            await self.replay(channel, replay)

    async def authorize(self, name: str, token: str | None) -> Identity:
        async with self.hub.database.session() as session:
            if token:
                identity = await principal.from_token(self.settings, session, token)
                if identity.user_id is None and self.cookie_identity is not None:
                    identity = self.cookie_identity  # the API key, from a signed-in browser
            else:
                identity = self.cookie_identity or principal.ANONYMOUS
            if not await topics.may_read(session, identity.user_id, name):
                raise Refused("Unauthorized",
                              f"You do not have permissions to read from this Channel topic: "
                              f"{name}")
        return identity

    async def replay(self, channel: Channel, replay: dict[str, Any]) -> None:
        after = replay.get("after_seq", replay.get("after", 0))
        limit = min(int(replay.get("limit") or self.settings.realtime_replay_max_events),
                    self.settings.realtime_replay_max_events)
        try:
            missed = await self.hub.broker.replay(
                channel.name, int(after) if isinstance(after, int | str) else 0, limit)
        except (ValueError, OSError) as exc:
            log.warning("realtime: replay failed: %s", exc)
            missed = []
        for message in missed:
            channel.deliver_change(message)
        channel.replaying = False
        for message in channel.held:  # live events that arrived meanwhile: no gap, no dup
            channel.deliver_change(message)
        channel.held.clear()

    def arm_expiry(self, channel: Channel) -> None:
        if channel.expiry is not None:
            channel.expiry.cancel()
            channel.expiry = None
        if channel.identity.expires_at is None:
            return
        delay = max(0.0, channel.identity.expires_at - time.time())
        loop = asyncio.get_running_loop()

        def expire() -> None:
            task = asyncio.ensure_future(self.shutdown(channel, "Token has expired 0 seconds ago"))
            self.tasks.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self.tasks.discard)

        channel.expiry = loop.call_later(delay, expire)

    async def shutdown(self, channel: Channel, message: str) -> None:
        """Realtime's `shutdown_response`: a system error message, then the channel stops."""
        if self.channels.get(channel.topic) is not channel:
            return
        channel.push("system", {"extension": "system", "status": "error", "message": message,
                                "channel": channel.name})
        await self.leave(channel)
        channel.push("phx_close", {})

    async def leave(self, channel: Channel) -> None:
        if self.channels.get(channel.topic) is channel:
            del self.channels[channel.topic]
        if channel.expiry is not None:
            channel.expiry.cancel()
        self.hub.unsubscribe(channel)
        if channel.tracked_ref is not None:
            await self.untrack(channel)

    # --- messages on a joined channel ------------------------------------------
    async def refresh_token(self, channel: Channel, frame: Frame) -> None:
        token = frame.payload.get("access_token") if isinstance(frame.payload, dict) else None
        if not isinstance(token, str) or not token:
            return
        try:
            channel.identity = await self.authorize(channel.name, token)
        except Refused as exc:
            await self.shutdown(channel, exc.message)
            return
        self.arm_expiry(channel)

    async def broadcast(self, channel: Channel, frame: Frame) -> None:
        message = frame.payload
        if not isinstance(message, UserBroadcast):
            body = frame.payload if isinstance(frame.payload, dict) else {}
            message = UserBroadcast(topic=channel.name, event=str(body.get("event", "")),
                                    payload=body.get("payload"))
        size = len(message.payload) if message.binary else len(
            encode(Frame(topic="", event="", payload=message.payload), VSN_2))
        if size > self.settings.realtime_max_payload_bytes:
            if channel.ack:
                self.reply(frame, "error", {"reason": "Payload size exceeded"})
            return
        if not topics.clients_may_broadcast(channel.name):
            if channel.ack:
                self.reply(frame, "error", {"reason": "Broadcasts are read-only on this topic"})
            return
        await self.hub.broadcast(channel.name, message, origin=channel.id)
        if channel.ack:
            self.reply(frame, "ok")

    async def presence(self, channel: Channel, frame: Frame) -> None:
        body = frame.payload if isinstance(frame.payload, dict) else {}
        event = str(body.get("event", "")).lower()
        if event == "track":
            meta = body.get("payload", {})
            if not isinstance(meta, dict):
                self.reply(frame, "error", {"reason": "Presence track payload must be a map"})
                return
            if len(encode(Frame(topic="", event="", payload=meta), VSN_2)) > \
                    self.settings.realtime_max_payload_bytes:
                await self.shutdown(channel, "Track message size exceeded")
                return
            if meta == channel.tracked_meta:
                self.reply(frame, "ok")
                return
            leaves = self.tracked(channel)
            channel.tracked_ref = uuid.uuid4().hex[:16]
            channel.tracked_meta = meta
            joins = self.tracked(channel)
            await self.hub.presence_diff(channel.name, joins, leaves)
            self.reply(frame, "ok")
        elif event == "untrack":
            await self.untrack(channel)
            self.reply(frame, "ok")
        else:
            self.reply(frame, "error", {})

    def tracked(self, channel: Channel) -> dict[str, dict[str, dict[str, Any]]]:
        if channel.tracked_ref is None or channel.tracked_meta is None:
            return {}
        return {channel.presence_key: {channel.tracked_ref: channel.tracked_meta
                                       | {"phx_ref": channel.tracked_ref}}}

    async def untrack(self, channel: Channel) -> None:
        leaves = self.tracked(channel)
        channel.tracked_ref = channel.tracked_meta = None
        if leaves:
            await self.hub.presence_diff(channel.name, {}, leaves)


def _map(value: Any) -> dict[str, Any]:
    """A JSON object of the client's, or {} for anything else."""
    return value if isinstance(value, dict) else {}


def allowed_origin(hub: Hub, origin: str | None) -> bool:
    """Browsers send Origin; native clients do not. Allowed: our public origin and the
    configured list (`TUTORAPP_REALTIME_ORIGINS`, default the CORS origins)."""
    if origin is None:
        return True
    settings = hub.settings
    allowed = {settings.public_origin, *(settings.realtime_origins or settings.cors_origins)}
    return "*" in allowed or origin.rstrip("/") in allowed


async def websocket_endpoint(websocket: WebSocket) -> None:
    hub: Hub = websocket.app.state.realtime
    settings = hub.settings
    vsn = websocket.query_params.get("vsn", VSN_1)
    if vsn not in (VSN_1, VSN_2) or not allowed_origin(hub, websocket.headers.get("origin")):
        await websocket.close(code=1008)
        return
    if hub.connections >= settings.realtime_max_clients:
        await websocket.close(code=1013, reason="Too many connected users")
        return
    cookie_identity = None
    if cookie := websocket.cookies.get(settings.session_cookie_name):
        async with hub.database.session() as session:
            with contextlib.suppress(Refused):
                cookie_identity = await principal.from_cookie(settings, session, cookie)
    await websocket.accept()
    hub.connections += 1
    try:
        await Connection(hub, websocket, vsn, cookie_identity).run()
    finally:
        hub.connections -= 1
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close()
