"""TutorApp: an open-source, self-hostable tutoring marketplace."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tutorapp")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
