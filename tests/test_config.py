import pytest
from pydantic import ValidationError

from tests.conftest import LIVE_VENDORS
from tutorapp.config import Settings, async_database_url

SAFE_PROD = {
    **LIVE_VENDORS,
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
        settings(**LIVE_VENDORS, profile="staging")
    assert settings(**LIVE_VENDORS, profile="staging", secret_key="y" * 32).dialect == "sqlite"


@pytest.mark.parametrize("profile", ["staging", "prod"])
@pytest.mark.parametrize(
    ("override", "variable"),
    [
        ({"payments_provider": "sandbox"}, "TUTORAPP_PAYMENTS_PROVIDER must not be sandbox"),
        ({"email_provider": "outbox"}, "TUTORAPP_EMAIL_PROVIDER must not be outbox"),
        ({"public_url": ""}, "TUTORAPP_PUBLIC_URL must be set"),
    ],
)
def test_internet_facing_profiles_refuse_the_sandbox_the_outbox_and_a_guessed_url(
    profile: str, override: dict[str, object], variable: str
) -> None:
    with pytest.raises(ValidationError) as error:
        settings(**(SAFE_PROD | {"profile": profile} | override))
    assert variable in str(error.value)


def test_prod_needs_an_https_public_url() -> None:
    with pytest.raises(ValidationError, match="TUTORAPP_PUBLIC_URL must be an https://"):
        settings(**(SAFE_PROD | {"public_url": "http://tutorapp.example"}))
    assert settings(**SAFE_PROD).public_url == "https://tutorapp.example"


def test_the_public_url_follows_the_served_host_and_port() -> None:
    assert settings().public_url == "http://127.0.0.1:8000"
    assert settings(port=8811).public_url == "http://127.0.0.1:8811"
    assert settings(host="0.0.0.0", port=8811).public_url == "http://127.0.0.1:8811"
    assert settings(host="tutor.lan", port=9000).public_url == "http://tutor.lan:9000"
    assert settings(host="::1", port=8811).public_url == "http://[::1]:8811"
    # a proxy in front: the operator's address wins, without a trailing slash
    named = settings(port=8811, public_url="https://tutors.example/")
    assert named.public_url == "https://tutors.example"
    assert named.public_origin == "https://tutors.example"
    with pytest.raises(ValidationError, match=r"TUTORAPP_PUBLIC_URL|public_url"):
        settings(public_url="tutors.example")


def test_checkout_origins_name_the_providers_hosted_checkout() -> None:
    assert settings(port=8811).checkout_origins == ["http://127.0.0.1:8811"]
    live = settings(**LIVE_VENDORS)
    assert live.checkout_origins == ["https://*.lemonsqueezy.com"]
    custom = settings(**LIVE_VENDORS, lemonsqueezy_checkout_origin="https://pay.tutors.example")
    assert custom.checkout_origins == ["https://pay.tutors.example"]
    with pytest.raises(ValidationError, match="lemonsqueezy_checkout_origin"):
        settings(**LIVE_VENDORS, lemonsqueezy_checkout_origin="https://x.example; script-src *")


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
