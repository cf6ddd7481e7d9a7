"""Fan-out between app processes, and the per-topic event log used for replay.

Three brokers with one interface, chosen by `Settings` (`broker_for`):
- `RedisBroker` (`TUTORAPP_REDIS_URL` set): pub/sub on one channel; a Lua script assigns
  the topic's next sequence number, appends the event to the topic's bounded log and
  publishes it in one atomic step, so every process sees a topic's events in sequence
  order and the log holds exactly what was published.
- `PostgresBroker` (PostgreSQL without Redis): LISTEN/NOTIFY; events are rows of
  `realtime_events` numbered under a per-topic advisory lock, notified in the same
  transaction (PostgreSQL delivers notifications in commit order).
- `LocalBroker` (otherwise): in-process.

Messages are JSON-able dicts; sequenced ones carry `seq`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tutorapp.config import Settings

log = logging.getLogger(__name__)
Deliver = Callable[[dict[str, Any]], Awaitable[None]]


class Broker(Protocol):
    async def start(self, deliver: Deliver) -> None: ...
    async def stop(self) -> None: ...
    async def publish(self, message: dict[str, Any]) -> None:
        """Fan out to every process (broadcasts, presence): not logged, no sequence."""
    async def publish_event(self, topic: str, message: dict[str, Any]) -> int:
        """Log and fan out a domain event; returns its sequence number on `topic`."""
    async def replay(self, topic: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        """Logged events of `topic` with seq > after_seq, oldest first, at most `limit`."""


class LocalBroker:
    def __init__(self, settings: Settings) -> None:
        self._max_events = settings.realtime_replay_max_events
        self._max_age = settings.realtime_replay_max_age_seconds
        self._deliver: Deliver | None = None
        self._seq: dict[str, int] = {}
        self._log: dict[str, deque[tuple[float, dict[str, Any]]]] = {}

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def stop(self) -> None:
        self._deliver = None

    async def publish(self, message: dict[str, Any]) -> None:
        if self._deliver is not None:
            await self._deliver(message)

    async def publish_event(self, topic: str, message: dict[str, Any]) -> int:
        seq = self._seq.get(topic, 0) + 1
        self._seq[topic] = seq
        message = message | {"seq": seq}
        self._log.setdefault(topic, deque(maxlen=self._max_events)).append((time.time(), message))
        await self.publish(message)
        return seq

    async def replay(self, topic: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        oldest = time.time() - self._max_age
        return [m for stamp, m in self._log.get(topic, ()) if m["seq"] > after_seq
                and stamp >= oldest][:limit]


# KEYS: seq key, log key; ARGV: the message's JSON object without its closing brace (the
# script appends `"seq"`; no JSON round trip in Lua, which would turn [] into {}), max
# events, channel, now (ms). The log is a sorted set scored by seq; members "<ms> <json>".
_PUBLISH_EVENT = """
local seq = redis.call('INCR', KEYS[1])
local encoded = ARGV[1] .. ',"seq":' .. seq .. '}'
redis.call('ZADD', KEYS[2], seq, ARGV[4] .. ' ' .. encoded)
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[2]))
redis.call('PUBLISH', ARGV[3], encoded)
return seq
"""


class RedisBroker:
    def __init__(self, settings: Settings) -> None:
        from redis.asyncio import Redis

        self._settings = settings
        self._redis = Redis.from_url(settings.redis_url or "", decode_responses=True)
        self._prefix = f"{settings.redis_key_prefix}:realtime"
        self._channel = f"{self._prefix}:fanout"
        self._script = self._redis.register_script(_PUBLISH_EVENT)
        self._task: asyncio.Task[None] | None = None

    async def start(self, deliver: Deliver) -> None:
        from redis.exceptions import RedisError

        subscribed = asyncio.Event()

        async def listen() -> None:
            backoff = 0.5
            while True:  # Redis restarts: subscribe again (messages meanwhile are lost)
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                try:
                    await pubsub.subscribe(self._channel)
                    subscribed.set()
                    backoff = 0.5
                    async for item in pubsub.listen():
                        try:
                            await deliver(json.loads(item["data"]))
                        except Exception:  # one bad message must not stop the fan-out
                            log.exception("realtime: delivering a Redis message failed")
                except (RedisError, OSError) as exc:
                    log.warning("realtime: Redis subscription lost (%s), retrying", exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                finally:
                    await pubsub.aclose()

        self._task = asyncio.create_task(listen(), name="realtime-redis")
        # serve even when Redis is down at start; wait briefly so a healthy Redis is
        # subscribed before the first client joins
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(subscribed.wait(), 5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._redis.aclose()

    async def publish(self, message: dict[str, Any]) -> None:
        await self._redis.publish(self._channel, json.dumps(message, separators=(",", ":")))

    async def publish_event(self, topic: str, message: dict[str, Any]) -> int:
        now_ms = int(time.time() * 1000)
        seq = await self._script(
            keys=[f"{self._prefix}:seq:{topic}", f"{self._prefix}:log:{topic}"],
            args=[json.dumps(message, separators=(",", ":"))[:-1],
                  self._settings.realtime_replay_max_events, self._channel, now_ms])
        await self._redis.expire(f"{self._prefix}:log:{topic}",
                                 self._settings.realtime_replay_max_age_seconds)
        return int(seq)

    async def replay(self, topic: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        oldest_ms = (time.time() - self._settings.realtime_replay_max_age_seconds) * 1000
        members = await self._redis.zrangebyscore(
            f"{self._prefix}:log:{topic}", f"({after_seq}", "+inf", start=0, num=limit)
        out = []
        for member in members:
            stamp, _, encoded = str(member).partition(" ")
            if int(stamp) >= oldest_ms:
                out.append(json.loads(encoded))
        return out


NOTIFY_CHANNEL = "tutorapp_realtime"
LISTENER_NAME = "tutorapp-realtime"  # the LISTEN connection's application_name
NOTIFY_INLINE = 7000  # NOTIFY payloads stop at 8000 bytes: larger messages go by row id


class PostgresBroker:
    """LISTEN/NOTIFY on a dedicated asyncpg connection; messages are rows of
    `realtime_events`, written through the app's engine."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self._settings, self._engine = settings, engine
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, deliver: Deliver) -> None:
        """Serve even when PostgreSQL is down at start: the listener connects in the
        background and connects again whenever its connection drops."""
        self._tasks = [asyncio.create_task(self._listen(), name="realtime-postgres-listen"),
                       asyncio.create_task(self._consume(deliver), name="realtime-postgres")]

    async def _listen(self) -> None:
        """Hold the LISTEN connection, with backoff (1 s doubling to 30 s) while
        PostgreSQL is unreachable. Notifications sent while no listener is connected
        are not received live; a client that reconnects replays them by sequence."""
        import asyncpg

        url = make_url(self._settings.database_url).set(drivername="postgresql")
        backoff = 1.0
        while True:
            try:
                listener = await asyncpg.connect(
                    url.render_as_string(hide_password=False),
                    timeout=self._settings.database_connect_timeout,
                    server_settings={"application_name": LISTENER_NAME})
            except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
                log.warning("realtime: cannot LISTEN on PostgreSQL (%s), retrying in %.0f s",
                            exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            closed = asyncio.Event()
            listener.add_termination_listener(lambda _conn, closed=closed: closed.set())
            try:
                await listener.add_listener(
                    NOTIFY_CHANNEL,
                    lambda _conn, _pid, _channel, payload: self._queue.put_nowait(payload))
                await closed.wait()
                log.warning("realtime: the LISTEN connection to PostgreSQL closed, reconnecting")
            except (OSError, asyncpg.PostgresError) as exc:
                log.warning("realtime: LISTEN on PostgreSQL failed (%s), reconnecting", exc)
            finally:
                if not listener.is_closed():
                    await listener.close()

    async def _consume(self, deliver: Deliver) -> None:
        while True:
            payload = await self._queue.get()
            try:
                if payload.startswith("#"):  # too big to notify: read the row
                    async with self._engine.connect() as conn:
                        payload = await conn.scalar(
                            text("SELECT message FROM realtime_events WHERE id = :id"),
                            {"id": int(payload[1:])}) or "{}"
                await deliver(json.loads(payload))
            except Exception:  # one bad message must not stop the fan-out
                log.exception("realtime: delivering a PostgreSQL notification failed")

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _write(self, topic: str, message: dict[str, Any], *, sequenced: bool) -> int:
        async with self._engine.begin() as conn:
            seq = None
            if sequenced:
                # one writer per topic at a time, until commit: sequence order = commit
                # order = the order PostgreSQL delivers the notifications in
                await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:t))"),
                                   {"t": f"realtime:{topic}"})
                seq = (await conn.scalar(text(
                    "SELECT coalesce(max(seq), 0) FROM realtime_events WHERE topic = :t"),
                    {"t": topic})) + 1
                message = message | {"seq": seq}
            encoded = json.dumps(message, separators=(",", ":"))
            row_id = await conn.scalar(text(
                "INSERT INTO realtime_events (topic, seq, message, created_at) "
                "VALUES (:t, :s, :m, now()) RETURNING id"), {"t": topic, "s": seq, "m": encoded})
            notify = encoded if len(encoded.encode()) <= NOTIFY_INLINE else f"#{row_id}"
            await conn.execute(text("SELECT pg_notify(:c, :p)"),
                               {"c": NOTIFY_CHANNEL, "p": notify})
            await conn.execute(text(
                "DELETE FROM realtime_events WHERE topic = :t AND (created_at < now() - "
                "make_interval(secs => CAST(:age AS double precision)) "
                "OR seq IS NULL AND id < CAST(:id AS bigint) - 1000 "
                "OR seq <= CAST(:s AS bigint) - CAST(:keep AS bigint))"),
                {"t": topic, "age": self._settings.realtime_replay_max_age_seconds,
                 "id": row_id, "s": seq or 0, "keep": self._settings.realtime_replay_max_events})
        return seq or 0

    async def publish(self, message: dict[str, Any]) -> None:
        await self._write(str(message.get("topic")), message, sequenced=False)

    async def publish_event(self, topic: str, message: dict[str, Any]) -> int:
        return await self._write(topic, message, sequenced=True)

    async def replay(self, topic: str, after_seq: int, limit: int) -> list[dict[str, Any]]:
        async with self._engine.connect() as conn:
            rows = await conn.scalars(text(
                "SELECT message FROM realtime_events WHERE topic = :t AND seq > :s AND "
                "created_at >= now() - make_interval(secs => CAST(:age AS double precision)) "
                "ORDER BY seq LIMIT :n"),
                {"t": topic, "s": after_seq, "n": limit,
                 "age": self._settings.realtime_replay_max_age_seconds})
            return [json.loads(row) for row in rows]


def broker_for(settings: Settings, engine: AsyncEngine | None = None) -> Broker:
    if settings.redis_url:
        return RedisBroker(settings)
    if engine is not None and engine.dialect.name == "postgresql":
        return PostgresBroker(settings, engine)
    return LocalBroker(settings)
