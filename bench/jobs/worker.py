"""`tutorapp worker` plus the benchmark's own functions."""

from __future__ import annotations

import sys

import bench.jobs.functions  # noqa: F401 - registers bench.noop

from tutorapp.config import Settings
from tutorapp.core.logging import configure_logging
from tutorapp.jobs.worker import run_forever

if __name__ == "__main__":
    settings = Settings()
    configure_logging(settings)
    run_forever(settings, executor_id=sys.argv[1] if len(sys.argv) > 1 else None, drain_seconds=2)
