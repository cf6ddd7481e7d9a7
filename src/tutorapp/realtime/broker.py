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
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

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
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        await pubsub.subscribe(self._channel)

        async def listen() -> None:
            try:
                async for item in pubsub.listen():
                    try:
                        await deliver(json.loads(item["data"]))
                    except Exception:  # one bad message must not stop the fan-out
                        log.exception("realtime: delivering a Redis message failed")
            finally:
                await pubsub.aclose()

        self._task = asyncio.create_task(listen(), name="realtime-redis")

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
            stamp, _, encoded = member.partition(" ")
            if int(stamp) >= oldest_ms:
                out.append(json.loads(encoded))
        return out


def broker_for(settings: Settings) -> Broker:
    if settings.redis_url:
        return RedisBroker(settings)
    return LocalBroker(settings)
