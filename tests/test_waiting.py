"""Tests wait for events with deadlines scaled by TUTORAPP_TEST_TIMEOUT_SCALE, which
.ci/run raises on a loaded machine."""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import pytest

from tests import waiting
from tests.conftest import ROOT


def test_deadlines_follow_the_scale(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(waiting.SCALE_VARIABLE, raising=False)
    assert waiting.deadline(30) == 30
    monkeypatch.setenv(waiting.SCALE_VARIABLE, "4")
    assert waiting.deadline(30) == 120
    monkeypatch.setenv(waiting.SCALE_VARIABLE, "2.5")
    assert waiting.deadline(10) == 25


@pytest.mark.parametrize("raw", ["fast", "0", "-2"])
def test_a_bad_scale_is_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, raw: str
) -> None:
    monkeypatch.setenv(waiting.SCALE_VARIABLE, raw)
    with pytest.raises(ValueError, match="TUTORAPP_TEST_TIMEOUT_SCALE"):
        waiting.deadline(1)


async def test_wait_until_returns_the_value_once_the_event_happened() -> None:
    polls = []

    async def third_time() -> str | None:
        polls.append(1)
        return "ready" if len(polls) == 3 else None

    assert await waiting.wait_until(third_time, timeout=30, what="readiness",
                                    interval=0) == "ready"
    assert len(polls) == 3
    assert waiting.wait_until_sync(lambda: 7, timeout=30, what="seven") == 7


async def test_wait_until_fails_naming_the_event_and_the_scaled_deadline(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(waiting.SCALE_VARIABLE, "2")
    with pytest.raises(AssertionError, match=r"timed out after 0\.02s waiting for the sky"):
        await waiting.wait_until(lambda: False, timeout=0.01, what="the sky", interval=0)
    with pytest.raises(AssertionError, match=r"timed out after 0\.02s waiting for rain"):
        waiting.wait_until_sync(lambda: 0, timeout=0.01, what="rain", interval=0)


def test_ci_raises_the_scale_and_keeps_a_caller_value(tmp_path: Path) -> None:
    """.ci/run exports a raised scale to `make test`, unless the caller set one."""
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("pg_isready", "redis-cli"):
        (fake / tool).write_text("#!/bin/sh\nexit 0\n")
    (fake / "make").write_text(f'#!/bin/sh\necho "$TUTORAPP_TEST_TIMEOUT_SCALE" > {tmp_path}/seen\n')
    for tool in fake.iterdir():
        tool.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != waiting.SCALE_VARIABLE}
    env["PATH"] = f"{fake}:{env['PATH']}"
    subprocess.run([str(ROOT / ".ci" / "run")], env=env, check=True, capture_output=True)
    assert float((tmp_path / "seen").read_text()) >= 3
    env[waiting.SCALE_VARIABLE] = "7"
    subprocess.run([str(ROOT / ".ci" / "run")], env=env, check=True, capture_output=True)
    assert (tmp_path / "seen").read_text().strip() == "7"


def _fixed_waits(path: Path) -> list[str]:
    """Calls that bound a wait with a bare number instead of `deadline(...)`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call):
            continue
        name = getattr(node.func, "attr", getattr(node.func, "id", ""))
        if name.startswith("wait_until"):  # scales its own timeout
            continue
        values = [k.value for k in node.keywords if k.arg == "timeout"]
        if name == "wait_for" and len(node.args) >= 2:
            values.append(node.args[1])
        for value in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, int | float):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    return found


def test_job_tests_bound_every_wait_by_a_scaled_deadline() -> None:
    files = sorted((ROOT / "tests" / "jobs").glob("*.py"))
    files += [ROOT / "tests" / "notifications" / "test_delivery.py"]
    assert [hit for f in files for hit in _fixed_waits(f)] == []
