from tests.scheduling.conftest import market  # noqa: F401
