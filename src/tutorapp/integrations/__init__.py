"""Outside services behind protocols; each capability names what backs it."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from tutorapp.config import Settings


def capabilities(settings: Settings) -> dict[str, str]:
    """Which engine or vendor backs each capability under these settings."""
    replicas = len(settings.database_replica_urls)
    database = settings.dialect + (" (pgbouncer)" if settings.database_pgbouncer else "")
    if replicas:
        database += f" + {replicas} read replica{'s' if replicas > 1 else ''}"
    return {
        "database": database,
        "cache": "redis" if settings.redis_url else "memory",
        "payments": settings.payments_provider,
        "email": settings.email_provider,
        "jobs": "dbos (sqlite)" if settings.jobs_system_database_url.startswith("sqlite")
        else "dbos (postgresql)",
    }


def redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)
