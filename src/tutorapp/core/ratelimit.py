"""Rate limits on a moving window, shared across processes when Redis is configured.

The store is in-process by default (`limits`' memory storage) and Redis when
`TUTORAPP_REDIS_URL` is set, so several app processes count the same attempts.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from tutorapp.config import Settings
from tutorapp.core.errors import TooManyRequests


@dataclass(frozen=True)
class Limit:
    """`attempts` per `seconds` for one kind of action."""

    name: str
    attempts: int
    seconds: int


class RateLimiter:
    def __init__(self, storage: Storage) -> None:
        self.storage = storage
        self.strategy = MovingWindowRateLimiter(storage)

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        if settings.redis_url:
            uri = settings.redis_url.replace("redis://", "async+redis://", 1).replace(
                "rediss://", "async+rediss://", 1
            )
            return cls(RedisStorage(uri, implementation="redispy", key_prefix=settings.redis_key_prefix))
        return cls(MemoryStorage())

    @staticmethod
    def _item(limit: Limit) -> RateLimitItemPerSecond:
        return RateLimitItemPerSecond(limit.attempts, limit.seconds, namespace=limit.name)

    async def hit(self, limit: Limit, key: str) -> None:
        """Count one attempt; raise TooManyRequests (with Retry-After) past the limit."""
        item = self._item(limit)
        if not await self.strategy.hit(item, key):
            raise TooManyRequests(await self.retry_after(limit, key))

    async def check(self, limit: Limit, key: str) -> None:
        """Refuse when the limit is already reached, without counting an attempt."""
        if not await self.strategy.test(self._item(limit), key):
            raise TooManyRequests(await self.retry_after(limit, key))

    async def allows(self, limit: Limit, key: str) -> bool:
        """Whether one more attempt would be allowed now."""
        return await self.strategy.test(self._item(limit), key)

    async def retry_after(self, limit: Limit, key: str) -> int:
        stats = await self.strategy.get_window_stats(self._item(limit), key)
        return max(1, math.ceil(stats.reset_time - time.time()))

    async def clear(self, limit: Limit, key: str) -> None:
        await self.strategy.clear(self._item(limit), key)
