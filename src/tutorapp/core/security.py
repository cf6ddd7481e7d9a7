"""Cryptographic building blocks: password hashing, opaque tokens, JWTs, secrets at rest."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from importlib.resources import files
from typing import Any, TypeVar

import jwt
from cryptography.fernet import Fernet, InvalidToken
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from tutorapp.config import Settings

T = TypeVar("T")
_PRODUCTION_HASH = PasswordHash.recommended()  # argon2id, 64 MiB, 3 passes: ~0.2 s of CPU
# The test profile hashes with argon2id's cheapest parameters (~1 ms): the test suite
# hashes at every sign-up and login, and a loaded CI machine spent most of its time here.
_TEST_HASH = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=1024, parallelism=1),))
_password_hash = _PRODUCTION_HASH
JWT_ALGORITHM = "HS256"


@cache
def _dummy_hash(hasher: PasswordHash) -> str:
    """Verified for unknown emails, so they cost as much as known ones."""
    return hasher.hash("not-a-real-password-just-timing")


def hash_password(password: str) -> str:
    """Blocking: for the CLI and tests. Requests use `hash_password_async`."""
    return _password_hash.hash(password)


def verify_password(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    """(valid, a new hash when the parameters were upgraded). Blocking, like `hash_password`."""
    if password_hash is None:
        _password_hash.verify(password, _dummy_hash(_password_hash))
        return False, None
    return _password_hash.verify_and_update(password, password_hash)


# argon2 takes tens of milliseconds of CPU on purpose: on the event loop it would stall
# every other request of the process (10 logins stalled /health/live for 3.8 s). It
# runs in a small thread pool instead (argon2-cffi releases the GIL while it hashes);
# the pool's size bounds how many hashes run at once, the rest queue.
_hashing_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


def configure_password_hashing(threads: int, *, test_profile: bool = False) -> None:
    """Size the hashing pool (`TUTORAPP_PASSWORD_HASH_THREADS`) and pick the argon2
    cost of the app's profile; called at app start. A hash made at either cost
    verifies at both (and is upgraded to the current one at the next sign-in)."""
    global _hashing_pool, _password_hash
    _password_hash = _TEST_HASH if test_profile else _PRODUCTION_HASH
    if _hashing_pool._max_workers != threads:
        previous, _hashing_pool = _hashing_pool, ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="argon2"
        )
        previous.shutdown(wait=False)


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(_hashing_pool, fn, *args)


async def hash_password_async(password: str) -> str:
    return await _off_loop(hash_password, password)


async def verify_password_async(password: str, password_hash: str | None) -> tuple[bool, str | None]:
    return await _off_loop(verify_password, password, password_hash)


@cache
def common_passwords() -> frozenset[str]:
    text = files("tutorapp").joinpath("data/common-passwords.txt").read_text()
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line and not line.startswith("#")
    )


def password_problem(password: str) -> str | None:
    """Why this password is refused, or None (NIST 800-63B style: length and a block list)."""
    if len(password) < 10:
        return "must be at least 10 characters"
    if len(password) > 128:
        return "must be at most 128 characters"
    if password.lower() in common_passwords():
        return "is one of the 10,000 most common passwords"
    return None


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def new_numeric_code(digits: int = 6) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


def token_hash(token: str) -> str:
    """Opaque tokens are stored as SHA-256: high-entropy, so no salt or slow hash needed."""
    return hashlib.sha256(token.encode()).hexdigest()


def keyed_hash(settings: Settings, value: str) -> str:
    """HMAC for low-entropy secrets (6-digit codes, recovery codes)."""
    return hmac.new(settings.secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()


# --- secrets at rest ---------------------------------------------------------------


def _fernet(settings: Settings) -> Fernet:
    key = hashlib.sha256(f"at-rest:{settings.secret_key}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(settings: Settings, plaintext: str) -> str:
    return _fernet(settings).encrypt(plaintext.encode()).decode()


def decrypt(settings: Settings, ciphertext: str) -> str:
    try:
        return _fernet(settings).decrypt(ciphertext.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("cannot decrypt: the secret key changed?") from exc


# --- JWT access tokens ---------------------------------------------------------------


@dataclass(frozen=True)
class AccessClaims:
    sub: uuid.UUID
    role: str
    aal: str
    amr: list[str]
    session_id: uuid.UUID
    exp: int
    jti: str


class TokenError(Exception):
    pass


@dataclass(frozen=True)
class AsymmetricKey:
    kid: str
    algorithm: str  # ES256 or RS256
    private: Any
    public: Any


@cache
def _load_private_key(pem: str, kid: str) -> AsymmetricKey:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    private = load_pem_private_key(pem.encode(), password=None)
    algorithm = "ES256" if isinstance(private, ec.EllipticCurvePrivateKey) else "RS256"
    return AsymmetricKey(kid, algorithm, private, private.public_key())


def asymmetric_key(settings: Settings) -> AsymmetricKey | None:
    """The configured signing key pair (Supabase's "JWT signing keys"), if any."""
    if not settings.jwt_private_key:
        return None
    return _load_private_key(settings.jwt_private_key, settings.jwt_private_key_id)


def jwks(settings: Settings) -> dict[str, Any]:
    """The public half of the signing key as a JWK Set, for other services to verify."""
    key = asymmetric_key(settings)
    if key is None:
        return {"keys": []}
    algorithm = jwt.get_algorithm_by_name(key.algorithm)
    jwk = algorithm.to_jwk(key.public, as_dict=True)
    return {"keys": [jwk | {"kid": key.kid, "alg": key.algorithm, "use": "sig",
                            "key_ops": ["verify"]}]}


AMR = list[str] | list[tuple[str, int]]


def issue_access_token(
    settings: Settings, *, user_id: uuid.UUID, role: str, aal: str, amr: AMR,
    session_id: uuid.UUID, now: datetime, email: str | None = None,
    user_metadata: dict[str, Any] | None = None, app_metadata: dict[str, Any] | None = None,
) -> tuple[str, int]:
    """A signed JWT and its lifetime in seconds, with the claims Supabase Auth issues:
    `role` is the database role `authenticated`; our own role is `app_metadata.role`.
    `amr` entries are methods, or (method, unix time it was used)."""
    ttl = settings.access_token_ttl_seconds
    stamp = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "email": email or "",
        "phone": "",
        "app_metadata": (app_metadata or {}) | {"role": role},
        "user_metadata": user_metadata or {},
        "role": "authenticated",
        "aal": aal,
        "amr": [{"method": m, "timestamp": stamp} if isinstance(m, str)
                else {"method": m[0], "timestamp": m[1]} for m in amr],
        "session_id": str(session_id),
        "is_anonymous": False,
        "iat": stamp,
        "exp": int((now + timedelta(seconds=ttl)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    if key := asymmetric_key(settings):
        token = jwt.encode(claims, key.private, algorithm=key.algorithm,
                           headers={"kid": key.kid})
        return token, ttl
    kid, secret = settings.signing_keys[0]
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM, headers={"kid": kid}), ttl


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """Verify signature (by `kid`), algorithm, issuer, audience and expiry. The shared
    `jwt_keys` keep verifying while an asymmetric key is introduced (rotation)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError("malformed token") from exc
    key: Any = dict(settings.signing_keys).get(header.get("kid", ""))
    algorithm = JWT_ALGORITHM
    if (pair := asymmetric_key(settings)) and header.get("kid") == pair.kid:
        key, algorithm = pair.public, pair.algorithm
    if key is None:
        raise TokenError("unknown signing key")
    try:
        claims = jwt.decode(
            token, key, algorithms=[algorithm], audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub", "session_id", "aud", "iss", "jti"]},
        )
        return AccessClaims(
            sub=uuid.UUID(claims["sub"]), role=claims["role"], aal=claims["aal"],
            amr=[m["method"] for m in claims.get("amr", [])],
            session_id=uuid.UUID(claims["session_id"]), exp=claims["exp"], jti=claims["jti"],
        )
    except (jwt.PyJWTError, KeyError, ValueError, TypeError) as exc:
        raise TokenError(str(exc) or "invalid token") from exc


def csrf_token(settings: Settings, session_id: uuid.UUID) -> str:
    """Bound to the session: a token from another session never validates."""
    return keyed_hash(settings, f"csrf:{session_id}")
