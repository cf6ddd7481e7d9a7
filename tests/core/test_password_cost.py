"""argon2's cost follows the profile: production parameters everywhere but in the
test profile, whose cheap hashes keep the suite fast (docs/testing.md)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_settings
from tutorapp.app import create_app
from tutorapp.core import security


def test_only_the_test_profile_hashes_cheaply(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cost.db'}"
    create_app(make_settings(url, profile="dev"))
    production = security.hash_password("correct horse battery")
    create_app(make_settings(url))  # the test profile
    cheap = security.hash_password("correct horse battery")
    assert production.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert cheap.startswith("$argon2id$v=19$m=1024,t=1,p=1$")
    # a hash of either cost verifies at the other, and is upgraded to the current one
    valid, upgraded = security.verify_password("correct horse battery", production)
    assert valid and upgraded is not None and upgraded.startswith("$argon2id$v=19$m=1024,")
    assert security.verify_password("correct horse battery", cheap) == (True, None)
    assert security.verify_password("wrong horse battery", cheap) == (False, None)
    assert security.verify_password("correct horse battery", None) == (False, None)
