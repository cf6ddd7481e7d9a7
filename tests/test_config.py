import pytest
from pydantic import ValidationError

from tutorapp.config import Settings, async_database_url

SAFE_PROD = {
    "profile": "prod",
    "secret_key": "x" * 40,
    "database_url": "postgresql://app@db.internal/tutorapp",
    "allowed_hosts": ["tutorapp.example"],
    "cors_origins": ["https://tutorapp.example"],
}


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_dev_defaults_run_on_embedded_engines() -> None:
    s = settings()
    assert s.profile == "dev"
    assert s.dialect == "sqlite"
    assert str(s.sqlite_path) == "var/tutorapp.db"
    assert s.json_logs is False
    assert s.https_only is False


def test_safe_prod_settings_are_accepted() -> None:
    s = settings(**SAFE_PROD)
    assert s.json_logs is True
    assert s.https_only is True


@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"secret_key": "dev-insecure-secret-key-change-me"}, "TUTORAPP_SECRET_KEY"),
        ({"debug": True}, "TUTORAPP_DEBUG"),
        ({"database_url": "sqlite:///./var/tutorapp.db"}, "TUTORAPP_DATABASE_URL"),
        ({"cors_origins": ["*"]}, "TUTORAPP_CORS_ORIGINS"),
        ({"allowed_hosts": ["*"]}, "TUTORAPP_ALLOWED_HOSTS"),
    ],
)
def test_prod_refuses_insecure_value_and_names_the_variable(
    override: dict[str, object], variable: str
) -> None:
    with pytest.raises(ValidationError) as error:
        settings(**(SAFE_PROD | override))
    assert variable in str(error.value)


def test_staging_refuses_the_default_secret_but_allows_sqlite() -> None:
    with pytest.raises(ValidationError, match="TUTORAPP_SECRET_KEY"):
        settings(profile="staging")
    assert settings(profile="staging", secret_key="y" * 32).dialect == "sqlite"


def test_lists_come_from_comma_separated_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TUTORAPP_CORS_ORIGINS", "https://a.example, https://b.example")
    monkeypatch.setenv("TUTORAPP_DATABASE_REPLICA_URLS", "postgresql://r1/db,postgresql://r2/db")
    s = settings()
    assert s.cors_origins == ["https://a.example", "https://b.example"]
    assert s.database_replica_urls == ["postgresql://r1/db", "postgresql://r2/db"]


def test_database_urls_map_to_async_drivers() -> None:
    assert async_database_url("postgresql://u@h/db").drivername == "postgresql+asyncpg"
    assert async_database_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"
    with pytest.raises(ValidationError, match="unsupported database"):
        settings(database_url="mysql://u@h/db")
