from tests.jobs.conftest import jobs_settings, running, worker  # noqa: F401 - shared fixtures
