"""What a user is on the platform: every access rule names one or more of these."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    student = "student"
    parent = "parent"
    tutor = "tutor"
    admin = "admin"
