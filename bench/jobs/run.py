"""Jobs throughput: N workflows enqueued up front, then drained by worker processes.

    python -m bench.jobs.run --scenario noop --count 10000 --dialect sqlite --workers 1
    python -m bench.jobs.run --scenario emails --count 2000 --dialect postgresql --workers 2

Scenarios: `noop` (a function with no step) and `emails` (reminder emails queued
with `enqueue_email`, delivered to the outbox: claim, send, record = 3 steps and 2
application transactions each). Each run uses a fresh database (a SQLite file in a
temporary directory, or a PostgreSQL database created and dropped). Reported:
enqueue rate, drain time (first run started -> last run completed, from DBOS's
own timestamps) and jobs/s over that time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]
PG_ADMIN = os.environ.get("BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


async def admin(statement: str) -> None:
    import asyncpg

    url = make_url(PG_ADMIN)
    connection = await asyncpg.connect(host=url.host, port=url.port or 5432, user=url.username,
                                       password=url.password, database=url.database)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def environment(database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORAPP_")}
    env |= {
        "TUTORAPP_PROFILE": "test", "TUTORAPP_DATABASE_URL": database_url,
        "TUTORAPP_SECRET_KEY": "bench-secret-key-that-is-long-enough-0123456789",
        "TUTORAPP_LOG_LEVEL": "WARNING", "TUTORAPP_JOBS_POLL_INTERVAL_SECONDS": "0.05",
        "PYTHONPATH": str(ROOT),
    }
    return env


async def enqueue_all(scenario: str, count: int) -> float:
    import bench.jobs.functions  # noqa: F401

    from tutorapp.config import Settings
    from tutorapp.core.db import Database
    from tutorapp.jobs.engine import enqueue, load_functions, runtime
    from tutorapp.notifications.service import enqueue_email

    settings = Settings()
    load_functions()
    runtime.configure(settings)
    started = time.perf_counter()
    if scenario == "noop":
        for batch in range(0, count, 200):
            await asyncio.gather(*(enqueue("bench.noop", i, key=str(i))
                                   for i in range(batch, min(count, batch + 200))))
    else:
        database = Database(settings)
        for batch in range(0, count, 200):
            async with database.unit_of_work() as session:
                for i in range(batch, min(count, batch + 200)):
                    await enqueue_email(
                        session, to=f"learner{i}@example.org", template="notice",
                        context={"title": "Your lesson starts in 24 hours",
                                 "body": f"Lesson #{i} with your tutor, tomorrow at 18:00.",
                                 "link": f"http://127.0.0.1:8000/lessons/{i}"})
        await database.dispose()
    elapsed = time.perf_counter() - started
    runtime.close()
    return elapsed


def progress(settings_url: str, schema: str, name: str
             ) -> tuple[int, int, int, int | None, int | None]:
    """(succeeded, failed, total, first start ms, last completion ms) from DBOS's
    workflow_status."""
    engine = sa.create_engine(settings_url)
    prefix = "" if settings_url.startswith("sqlite") else f"{schema}."
    try:
        with engine.connect() as c:
            row = c.execute(sa.text(
                f"SELECT SUM(CASE WHEN status = 'SUCCESS' THEN 1 ELSE 0 END), "
                f"SUM(CASE WHEN status = 'ERROR' THEN 1 ELSE 0 END), COUNT(*), "
                f"MIN(COALESCE(started_at_epoch_ms, created_at)), MAX(completed_at) "
                f"FROM {prefix}workflow_status WHERE name = :name"), {"name": name}).one()
    finally:
        engine.dispose()
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0), row[3], row[4]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenario", choices=["noop", "emails"], default="noop")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--dialect", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    if args.dialect == "sqlite" and args.workers != 1:
        parser.error("a SQLite jobs database is served by one worker process")

    tmp = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    pg_name = None
    if args.dialect == "sqlite":
        url = f"sqlite:///{tmp / 'tutorapp.db'}"
    else:
        pg_name = f"bench_jobs_{uuid.uuid4().hex[:8]}"
        asyncio.run(admin(f'CREATE DATABASE "{pg_name}"'))
        url = make_url(PG_ADMIN).set(database=pg_name).render_as_string(hide_password=False)
    env = environment(url)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    workers: list[subprocess.Popen] = []
    try:
        from tutorapp.config import Settings
        from tutorapp.core import migrate

        settings = Settings()
        migrate.upgrade(settings)
        enqueue_seconds = asyncio.run(enqueue_all(args.scenario, args.count))
        name = "bench.noop" if args.scenario == "noop" else "email.deliver"
        sys_url = settings.jobs_system_database_url
        if sys_url.startswith("postgresql://"):
            sys_url = sys_url.replace("postgresql://", "postgresql+psycopg://", 1)
        for n in range(args.workers):
            workers.append(subprocess.Popen(
                [sys.executable, "-m", "bench.jobs.worker", f"bench-{n}"], env=env, cwd=ROOT,
                stdout=(tmp / f"worker{n}.log").open("w"), stderr=subprocess.STDOUT))
        started = time.perf_counter()
        while True:
            done, failed, total, first, last = progress(
                sys_url, settings.jobs_database_schema, name)
            if total >= args.count and done + failed >= args.count:
                break
            if time.perf_counter() - started > 1800:
                raise SystemExit(f"timed out: {done}/{total}")
            time.sleep(0.5)
        drain = (last - first) / 1000 if first and last else float("nan")
        result = {
            "scenario": args.scenario, "count": args.count, "dialect": args.dialect,
            "workers": args.workers, "enqueue_per_s": round(args.count / enqueue_seconds, 1),
            "drain_seconds": round(drain, 2), "jobs_per_s": round(args.count / drain, 1),
            "succeeded": done, "failed": failed,
            "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
                       f"Python {platform.python_version()}",
        }
        print(json.dumps(result))
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                worker.kill()
        if pg_name:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
