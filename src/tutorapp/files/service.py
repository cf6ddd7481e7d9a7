"""The files domain's rules: who may read and write which object, what may be stored
where, signed links, quotas. The only writer of the storage tables.

Access (checked here, for every route and page):
- read: anyone for a public bucket; otherwise the owner, an admin (or the service
  key), and for an object attached to a booking its tutor, its student and the
  student's parent. Anyone else gets 404, as if the object did not exist.
- write: the owner (and admins). A user writes only under their own folder
  (`<user id>/...`, Supabase's usual policy), so names never collide across users.
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import jwt
from sqlalchemy import ColumnElement, false, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from tutorapp.accounts.models import User
from tutorapp.accounts.service import register_eraser, register_exporter, row_dict
from tutorapp.config import Settings
from tutorapp.core.db import after_commit
from tutorapp.core.time import utcnow
from tutorapp.files import content, meter
from tutorapp.files.buckets import AVATARS
from tutorapp.files.errors import (
    AccessDenied,
    BucketNotFound,
    InvalidObjectName,
    InvalidSignature,
    ObjectExists,
    ObjectNotFound,
    StorageFull,
    TooLarge,
    UnsupportedType,
    UserQuotaExceeded,
)
from tutorapp.files.models import ResumableUpload, StorageBucket, StoredObject
from tutorapp.integrations.storage import ObjectMissing, StorageBackend
from tutorapp.scheduling.models import Booking

DOWNLOAD, UPLOAD = "download", "upload"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Caller:
    """Who acts: a user (or nobody), and whether they may act on every object
    (an admin, or a request with the service key)."""

    user_id: uuid.UUID | None
    admin: bool = False


ANONYMOUS = Caller(user_id=None)


@dataclass
class Upload:
    """What to store: the body's chunks and what the client said about it."""

    chunks: AsyncIterator[bytes]
    filename: str
    declared_size: int | None = None
    cache_control: str = "max-age=3600"
    user_metadata: dict[str, Any] | None = None


KEY_TIME = "%Y%m%dT%H%M%S"


def new_key(folder: str) -> str:
    """A backend key: server-made, never from user input; its time lets the sweep
    leave alone bytes whose row may still be on its way to a commit."""
    return f"{folder}/{utcnow().strftime(KEY_TIME)}-{uuid.uuid4().hex}"


def _key_time(key: str) -> datetime | None:
    stamp = key.rsplit("/", 1)[-1].split("-", 1)[0].split(".", 1)[0]
    try:
        return datetime.strptime(stamp, KEY_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None


def check_name(name: str) -> str:
    """An object name as Supabase allows it: a relative path without dot segments."""
    parts = name.split("/")
    if (not name or len(name) > 1024 or name.startswith("/") or "\\" in name
            or _CONTROL.search(name) or any(p in ("", ".", "..") for p in parts)):
        raise InvalidObjectName(f"Invalid key: {name[:200]}")
    return name


def _may_write_name(caller: Caller, name: str) -> bool:
    return caller.admin or (caller.user_id is not None
                            and name.split("/", 1)[0] == str(caller.user_id))


def readable(caller: Caller) -> ColumnElement[bool]:
    """The objects `caller` may read, as a WHERE clause (listing)."""
    if caller.admin:
        return true()
    if caller.user_id is None:
        return false()
    uid = caller.user_id
    children = select(User.id).where(User.parent_id == uid)
    bookings = select(Booking.id).where(or_(
        Booking.tutor_user_id == uid, Booking.student_id == uid, Booking.student_id.in_(children)))
    return or_(StoredObject.owner_id == uid, StoredObject.booking_id.in_(bookings))


async def may_read(session: AsyncSession, caller: Caller, obj: StoredObject) -> bool:
    if caller.admin or (caller.user_id is not None and obj.owner_id == caller.user_id):
        return True
    if caller.user_id is None or obj.booking_id is None:
        return False
    booking = await session.get(Booking, obj.booking_id)
    if booking is None:
        return False
    if caller.user_id in (booking.tutor_user_id, booking.student_id):
        return True
    student = await session.get(User, booking.student_id)
    return student is not None and student.parent_id == caller.user_id


def _may_modify(caller: Caller, obj: StoredObject) -> bool:
    return caller.admin or (caller.user_id is not None and obj.owner_id == caller.user_id)


# --- buckets -------------------------------------------------------------------------


async def bucket(session: AsyncSession, bucket_id: str) -> StorageBucket:
    found = await session.get(StorageBucket, bucket_id)
    if found is None:
        raise BucketNotFound("Bucket not found")
    return found


async def buckets(session: AsyncSession) -> list[StorageBucket]:
    return list(await session.scalars(select(StorageBucket).order_by(StorageBucket.id)))


async def usage_by_bucket(session: AsyncSession) -> list[dict[str, Any]]:
    """Objects and bytes per bucket (the admin's storage page)."""
    rows = (await session.execute(
        select(StorageBucket.id, StorageBucket.public, StorageBucket.file_size_limit,
               func.count(StoredObject.id), func.coalesce(func.sum(StoredObject.size), 0))
        .outerjoin(StoredObject, StoredObject.bucket_id == StorageBucket.id)
        .group_by(StorageBucket.id, StorageBucket.public, StorageBucket.file_size_limit)
        .order_by(StorageBucket.id)
    )).all()
    return [{"bucket": b, "public": p, "file_size_limit": limit, "objects": n, "bytes": int(s),
             "metered_bytes": await meter.stored(session, b)} for b, p, limit, n, s in rows]


# --- objects ---------------------------------------------------------------------------


async def find(session: AsyncSession, caller: Caller, bucket_id: str, name: str,
               *, public: bool = False) -> StoredObject:
    """The object, if `caller` may read it (`public`: only from a public bucket)."""
    found_bucket = await bucket(session, bucket_id)
    if public and not found_bucket.public:
        raise BucketNotFound("Bucket not found")
    obj = await session.scalar(select(StoredObject).where(
        StoredObject.bucket_id == bucket_id, StoredObject.name == name))
    if obj is None or (obj.expires_at is not None and obj.expires_at <= utcnow()):
        raise ObjectNotFound("Object not found")
    if not found_bucket.public and not await may_read(session, caller, obj):
        raise ObjectNotFound("Object not found")
    return obj


async def find_by_id(session: AsyncSession, caller: Caller, object_id: uuid.UUID
                     ) -> StoredObject:
    obj = await session.get(StoredObject, object_id)
    if obj is None:
        raise ObjectNotFound("Object not found")
    return await find(session, caller, obj.bucket_id, obj.name)


async def _peek(chunks: AsyncIterator[bytes], size: int) -> tuple[bytes, AsyncIterator[bytes]]:
    """The first `size` bytes, and an iterator over all of them again."""
    head = b""
    async for chunk in chunks:
        head += chunk
        if len(head) >= size:
            break

    async def again() -> AsyncIterator[bytes]:
        if head:
            yield head
        async for chunk in chunks:
            yield chunk

    return head[:size], again()


async def _limited(chunks: AsyncIterator[bytes], limit: int | None) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if limit is not None and total > limit:
            raise TooLarge(f"The object exceeded the maximum allowed size ({limit} bytes)")
        yield chunk


async def _read_all(chunks: AsyncIterator[bytes]) -> bytes:
    """For images only, whose bucket limit bounds them (a few MB): Pillow needs them whole."""
    with tempfile.SpooledTemporaryFile(max_size=1024 * 1024) as spool:
        async for chunk in chunks:
            spool.write(chunk)
        spool.seek(0)
        return spool.read()


async def upload(
    session: AsyncSession, store: StorageBackend, settings: Settings, caller: Caller,
    bucket_id: str, name: str, body: Upload, *, upsert: bool = False,
    booking_id: uuid.UUID | None = None,
) -> StoredObject:
    """Store a new object (or replace one, with `upsert`) after checking the name, the
    caller's rights, the bucket's size limit and types (by content), and the quotas."""
    target = await bucket(session, bucket_id)
    check_name(name)
    if not _may_write_name(caller, name):
        raise AccessDenied("new row violates row-level security policy")
    limit = target.file_size_limit
    if limit is not None and body.declared_size is not None and body.declared_size > limit:
        raise TooLarge(f"The object exceeded the maximum allowed size ({limit} bytes)")
    # Checked now to fail fast, and again under the row lock once the bytes are in:
    # no lock is held while a body streams (on SQLite it would stop every writer).
    named = (StoredObject.bucket_id == bucket_id, StoredObject.name == name)
    existing = await session.scalar(select(StoredObject).where(*named))
    if existing is not None and (not upsert or not _may_modify(caller, existing)):
        raise ObjectExists("The resource already exists")

    head, chunks = await _peek(body.chunks, content.HEAD_BYTES)
    mime = content.sniff(head, body.filename or name, target.allowed_mime_types)
    if mime is None:
        raise UnsupportedType("mime type of this file is not supported by the bucket",
                              allowed=target.allowed_mime_types)
    key = new_key(bucket_id)
    filename = body.filename or name.rsplit("/", 1)[-1]
    disposition = content.content_disposition(filename)
    variants: dict[str, Any] | None = None
    written = [key]
    try:
        if mime in content.IMAGE_FORMATS:
            raw = await _read_all(_limited(chunks, limit))
            try:
                data = await anyio.to_thread.run_sync(content.clean_image, raw, mime)
            except content.UnreadableImage as exc:
                raise UnsupportedType(f"The image cannot be read: {exc}") from exc
            stored = await store.put(key, content.once(data), content_type=mime,
                                     content_disposition=disposition)
            if bucket_id == AVATARS:
                variants = {}
                made_variants = await anyio.to_thread.run_sync(content.avatar_variants, data)
                for label, (blob, kind) in made_variants.items():
                    variant_key = f"{key}.{label}"
                    written.append(variant_key)
                    made = await store.put(variant_key, content.once(blob), content_type=kind)
                    variants[label] = {"key": variant_key, "mime_type": kind, "size": made.size}
        else:
            stored = await store.put(key, _limited(chunks, limit), content_type=mime,
                                     content_disposition=disposition)
        existing = await session.scalar(select(StoredObject).where(*named).with_for_update())
        if existing is not None and (not upsert or not _may_modify(caller, existing)):
            raise ObjectExists("The resource already exists")
        replaced = existing.size if existing is not None else 0
        await _check_quotas(session, settings, caller, target.id, stored.size - replaced)
        old_keys = _keys_of(existing) if existing is not None else []
        obj = existing or StoredObject(bucket_id=bucket_id, name=name,
                                       owner_id=caller.user_id, booking_id=booking_id)
        obj.key, obj.size, obj.mime_type, obj.etag = key, stored.size, mime, stored.etag
        obj.cache_control = body.cache_control
        obj.variants, obj.user_metadata = variants, body.user_metadata
        if target.expires_after_days:
            obj.expires_at = utcnow() + timedelta(days=target.expires_after_days)
        if existing is None:
            session.add(obj)
        await session.flush()  # a concurrent upload of the same name fails here
    except BaseException:
        for written_key in written:
            await store.delete(written_key)
        raise
    delete_after_commit(session, store, old_keys)
    return obj


async def _check_quotas(session: AsyncSession, settings: Settings, caller: Caller,
                        bucket_id: str, added: int) -> None:
    if caller.user_id is not None and settings.storage_user_quota_bytes and added > 0:
        used = await session.scalar(select(func.coalesce(func.sum(StoredObject.size), 0))
                                    .where(StoredObject.owner_id == caller.user_id))
        if int(used or 0) + added > settings.storage_user_quota_bytes:
            raise UserQuotaExceeded(
                f"This upload would pass your storage quota of "
                f"{settings.storage_user_quota_bytes} bytes: delete files first.",
                quota=settings.storage_user_quota_bytes)
    if added >= 0:
        if not await meter.reserve(session, bucket_id, added, settings.storage_total_quota_bytes):
            raise StorageFull("The platform's storage is full: nothing was stored.",
                              quota=settings.storage_total_quota_bytes)
    else:
        await meter.release(session, bucket_id, -added)


def _keys_of(obj: StoredObject) -> list[str]:
    return [obj.key, *(v["key"] for v in (obj.variants or {}).values())]


def delete_after_commit(session: AsyncSession, store: StorageBackend, keys: list[str]) -> None:
    """Bytes go once the rows that named them are gone for good (the sweep catches a
    process that died in between)."""
    if not keys:
        return

    async def delete() -> None:
        for key in keys:
            await store.delete(key)

    after_commit(session, delete)


async def remove(session: AsyncSession, store: StorageBackend, caller: Caller, bucket_id: str,
                 names: list[str]) -> list[StoredObject]:
    """Delete the named objects the caller may delete; others are skipped (as
    Supabase answers for objects its policies hide). A reader who may not delete
    (a booking's student) gets 403."""
    await bucket(session, bucket_id)
    rows = list(await session.scalars(select(StoredObject).where(
        StoredObject.bucket_id == bucket_id, StoredObject.name.in_(names))))
    deleted = []
    for obj in rows:
        if _may_modify(caller, obj):
            deleted.append(obj)
        elif await may_read(session, caller, obj):
            raise AccessDenied("Only the owner may delete this object")
    await _delete_rows(session, store, deleted)
    return deleted


async def _delete_rows(session: AsyncSession, store: StorageBackend,
                       rows: list[StoredObject]) -> None:
    keys: list[str] = []
    for obj in rows:
        keys += _keys_of(obj)
        await meter.release(session, obj.bucket_id, obj.size)
        await session.delete(obj)
    await session.flush()
    delete_after_commit(session, store, keys)


async def move(session: AsyncSession, caller: Caller, bucket_id: str, source: str,
               destination: str, destination_bucket: str | None = None) -> StoredObject:
    obj = await find(session, caller, bucket_id, source)
    check_name(destination)
    if (destination_bucket or bucket_id) != bucket_id:
        raise InvalidObjectName("Objects move within their bucket")
    if not _may_modify(caller, obj):
        raise AccessDenied("Only the owner may move this object")
    if not _may_write_name(caller, destination):
        raise AccessDenied("new row violates row-level security policy")
    if await session.scalar(select(StoredObject.id).where(
            StoredObject.bucket_id == bucket_id, StoredObject.name == destination)):
        raise ObjectExists("The resource already exists")
    obj.name = destination
    await session.flush()
    return obj


async def copy(session: AsyncSession, store: StorageBackend, settings: Settings,
               caller: Caller, bucket_id: str, source: str, destination: str,
               destination_bucket: str | None = None, *, upsert: bool = False) -> StoredObject:
    obj = await find(session, caller, bucket_id, source)
    check_name(destination)
    if (destination_bucket or bucket_id) != bucket_id:
        raise InvalidObjectName("Objects are copied within their bucket")
    if not _may_write_name(caller, destination):
        raise AccessDenied("new row violates row-level security policy")
    existing = await session.scalar(select(StoredObject).where(
        StoredObject.bucket_id == bucket_id, StoredObject.name == destination))
    if existing is not None and (not upsert or not _may_modify(caller, existing)):
        raise ObjectExists("The resource already exists")
    key = new_key(bucket_id)
    await store.copy(obj.key, key)
    try:
        await _check_quotas(session, settings, caller, bucket_id,
                            obj.size - (existing.size if existing else 0))
    except BaseException:
        await store.delete(key)
        raise
    if existing is not None:
        delete_after_commit(session, store, _keys_of(existing))
        await session.delete(existing)
        await session.flush()
    twin = StoredObject(bucket_id=bucket_id, name=destination, owner_id=caller.user_id,
                        booking_id=obj.booking_id, key=key, size=obj.size,
                        mime_type=obj.mime_type, etag=obj.etag, cache_control=obj.cache_control,
                        user_metadata=obj.user_metadata, expires_at=obj.expires_at)
    session.add(twin)
    await session.flush()
    return twin


async def listing(session: AsyncSession, caller: Caller, bucket_id: str, prefix: str, *,
                  limit: int, offset: int, search: str, sort_column: str, descending: bool
                  ) -> list[dict[str, Any]]:
    """Supabase's folder view: the files right under `prefix`, and its sub-folders as
    entries whose `id` is null."""
    await bucket(session, bucket_id)
    folder = prefix.strip("/")
    start = f"{folder}/" if folder else ""
    query = select(StoredObject).where(StoredObject.bucket_id == bucket_id, readable(caller))
    if start:
        query = query.where(func.substr(StoredObject.name, 1, len(start)) == start)
    entries: dict[str, dict[str, Any]] = {}
    for obj in await session.scalars(query):
        rest = obj.name[len(start):]
        child, _, below = rest.partition("/")
        if search and not child.startswith(search):
            continue
        if below:
            entries.setdefault(child, {"name": child, "id": None, "updated_at": None,
                                       "created_at": None, "last_accessed_at": None,
                                       "metadata": None})
        else:
            entries[child] = {**object_json(obj), "name": child}
    column = sort_column if sort_column in ("name", "created_at", "updated_at") else "name"
    folders = sorted((e for e in entries.values() if e["id"] is None), key=lambda e: e["name"])
    files = sorted((e for e in entries.values() if e["id"] is not None),
                   key=lambda e: e[column] or "", reverse=descending)
    return [*folders, *files][offset:offset + limit]


def object_json(obj: StoredObject) -> dict[str, Any]:
    """An object as Supabase Storage describes it."""
    return {
        "name": obj.name, "bucket_id": obj.bucket_id, "id": str(obj.id),
        "owner": str(obj.owner_id) if obj.owner_id else "",
        "owner_id": str(obj.owner_id) if obj.owner_id else "",
        "version": obj.key.rsplit("/", 1)[-1],
        "created_at": obj.created_at.isoformat(), "updated_at": obj.updated_at.isoformat(),
        "last_accessed_at": obj.updated_at.isoformat(),
        "metadata": {"size": obj.size, "mimetype": obj.mime_type, "eTag": f'"{obj.etag}"',
                     "cacheControl": obj.cache_control, "contentLength": obj.size,
                     "lastModified": obj.updated_at.isoformat(), "httpStatusCode": 200},
        "user_metadata": obj.user_metadata,
    }


# --- signed links ----------------------------------------------------------------------


def _signing_key(settings: Settings) -> str:
    import hashlib

    return hashlib.sha256(f"storage-url:{settings.secret_key}".encode()).hexdigest()


def sign(settings: Settings, scope: str, bucket_id: str, name: str, expires_in: int,
         **claims: Any) -> str:
    """An HMAC-signed token for one object name and one use (download or upload)."""
    now = utcnow()
    body = {"url": f"{bucket_id}/{name}", "scope": scope, "iat": int(now.timestamp()),
            "exp": int(now.timestamp()) + expires_in, **claims}
    return jwt.encode(body, _signing_key(settings), algorithm="HS256")


def verify(settings: Settings, token: str, scope: str, bucket_id: str, name: str
           ) -> dict[str, Any]:
    """The token's claims if it was signed by us for exactly this object and use."""
    try:
        claims: dict[str, Any] = jwt.decode(token, _signing_key(settings), algorithms=["HS256"],
                                            options={"require": ["exp", "url", "scope"]})
    except jwt.ExpiredSignatureError as exc:
        raise InvalidSignature("The signed URL has expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidSignature("Invalid signature") from exc
    if claims["url"] != f"{bucket_id}/{name}" or claims["scope"] != scope:
        raise InvalidSignature("The signature does not match this object")
    return claims


async def sign_download(session: AsyncSession, settings: Settings, caller: Caller,
                        bucket_id: str, name: str, expires_in: int) -> str:
    if expires_in < 1 or expires_in > settings.storage_signed_url_max_seconds:
        raise InvalidObjectName(
            f"expiresIn must be between 1 and {settings.storage_signed_url_max_seconds}")
    obj = await find(session, caller, bucket_id, name)
    return sign(settings, DOWNLOAD, bucket_id, name, expires_in, oid=str(obj.id))


async def signed_object(session: AsyncSession, settings: Settings, token: str, bucket_id: str,
                        name: str) -> tuple[StoredObject, int]:
    """The object a download token names, and when the token expires; a replaced
    object (same name, new upload) is not the one that was signed."""
    claims = verify(settings, token, DOWNLOAD, bucket_id, name)
    obj = await find(session, Caller(user_id=None, admin=True), bucket_id, name)
    if str(obj.id) != claims.get("oid") or obj.updated_at.timestamp() > claims["iat"] + 1:
        raise ObjectNotFound("Object not found")
    return obj, int(claims["exp"])


async def sign_upload(session: AsyncSession, settings: Settings, caller: Caller, bucket_id: str,
                      name: str, *, upsert: bool) -> str:
    await bucket(session, bucket_id)
    check_name(name)
    if not _may_write_name(caller, name):
        raise AccessDenied("new row violates row-level security policy")
    return sign(settings, UPLOAD, bucket_id, name, settings.storage_upload_url_seconds,
                owner=str(caller.user_id) if caller.user_id else None,
                admin=caller.admin, upsert=upsert)


def upload_caller(settings: Settings, token: str, bucket_id: str, name: str
                  ) -> tuple[Caller, bool]:
    """Who signed an upload URL, and whether it may replace an object."""
    claims = verify(settings, token, UPLOAD, bucket_id, name)
    owner = uuid.UUID(claims["owner"]) if claims.get("owner") else None
    return Caller(user_id=owner, admin=bool(claims.get("admin"))), bool(claims.get("upsert"))


# --- opening bytes --------------------------------------------------------------------


Opener = Callable[[int, int | None], AsyncIterator[bytes]]


def opener(store: StorageBackend, obj: StoredObject, variant: str | None = None) -> Opener:
    key = obj.key
    if variant is not None and obj.variants and variant in obj.variants:
        key = obj.variants[variant]["key"]

    def open_range(start: int, end: int | None) -> AsyncIterator[bytes]:
        return store.get(key, start, end)

    return open_range


async def attach_to_booking(session: AsyncSession, store: StorageBackend, settings: Settings,
                            caller: Caller, booking_id: uuid.UUID, body: Upload
                            ) -> StoredObject:
    """A lesson material: the booking's tutor uploads it for the booking's student."""
    booking = await session.get(Booking, booking_id)
    if booking is None or (booking.tutor_user_id != caller.user_id and not caller.admin):
        raise ObjectNotFound("Booking not found")
    name = f"{booking.tutor_user_id}/{booking_id}/{uuid.uuid4().hex[:8]}-{_safe(body.filename)}"
    owner = Caller(user_id=booking.tutor_user_id, admin=caller.admin)
    return await upload(session, store, settings, owner, "materials", name, body,
                        booking_id=booking_id)


def display_filename(obj: StoredObject) -> str:
    """The name a person gave the file (materials carry a short unique prefix)."""
    last = obj.name.rsplit("/", 1)[-1]
    if obj.booking_id is not None and re.fullmatch(r"[0-9a-f]{8}-.+", last):
        return last[9:]
    return last


def _safe(filename: str) -> str:
    cleaned = re.sub(r"[^\w.\- ]+", "_", filename.rsplit("/", 1)[-1]).strip(" .")
    return cleaned[:120] or "file"


async def materials_of(session: AsyncSession, caller: Caller, booking_id: uuid.UUID
                       ) -> list[StoredObject]:
    return list(await session.scalars(
        select(StoredObject).where(StoredObject.booking_id == booking_id, readable(caller))
        .order_by(StoredObject.created_at)))


# Message attachments (the `attachments` bucket) hook in here when messaging exists:
# messaging calls `upload(..., "attachments", ...)` with the conversation's id as a
# folder and extends `may_read`/`readable` with "a participant of that conversation".


async def avatar_of(session: AsyncSession, user_id: uuid.UUID) -> StoredObject | None:
    return await session.scalar(select(StoredObject).where(
        StoredObject.bucket_id == AVATARS, StoredObject.name == f"{user_id}/avatar"))


async def avatar_of_tutor(session: AsyncSession, tutor_id: uuid.UUID) -> StoredObject | None:
    from tutorapp.tutors.models import TutorProfile

    user_id = await session.scalar(select(TutorProfile.user_id).where(TutorProfile.id == tutor_id))
    return None if user_id is None else await avatar_of(session, user_id)


async def orphans(session: AsyncSession, store: StorageBackend, *,
                  older_than: timedelta = timedelta(hours=1)) -> int:
    """The sweep: delete expired objects, objects of deleted users, and bytes no row
    names (an upload whose transaction rolled back, a process that died)."""
    now = utcnow()
    gone = list(await session.scalars(select(StoredObject).where(or_(
        StoredObject.expires_at <= now,
        StoredObject.owner_id.in_(select(User.id).where(User.deleted_at.is_not(None))),
        (StoredObject.owner_id.is_(None) & StoredObject.booking_id.is_(None)),
    ))))
    await _delete_rows(session, store, gone)
    stale = list(await session.scalars(select(ResumableUpload).where(
        ResumableUpload.expires_at <= now)))
    for upload_row in stale:
        await session.delete(upload_row)
    known: set[str] = set()
    for obj in await session.scalars(select(StoredObject)):
        known.update(_keys_of(obj))
    live_uploads = {str(u) for u in await session.scalars(select(ResumableUpload.id))}
    removed = len(gone)
    async for key in store.keys(""):
        if key.split(".", 1)[0] in known or (  # an object, its variant or its renders
                key.startswith("uploads/") and key.split("/")[1] in live_uploads):
            continue
        made = _key_time(key)
        if made is not None and made > now - older_than:
            continue  # maybe an upload between its `put` and its commit
        await store.delete(key)
        removed += 1
    return removed


@register_exporter("files")
async def _export(db: AsyncSession, user: User) -> list[dict[str, Any]]:
    rows = await db.scalars(select(StoredObject).where(StoredObject.owner_id == user.id))
    return [row_dict(r, exclude=("key", "variants")) for r in rows]


@register_eraser("files")
async def _erase(db: AsyncSession, user: User) -> None:
    """A deleted user's objects go with them: the rows now, the bytes (no row names
    them any more) at the next orphan sweep."""
    for obj in list(await db.scalars(select(StoredObject).where(StoredObject.owner_id == user.id))):
        await meter.release(db, obj.bucket_id, obj.size)
        await db.delete(obj)


async def create_bucket(session: AsyncSession, bucket_id: str, *, public: bool,
                        file_size_limit: int | None, allowed_mime_types: list[str] | None
                        ) -> StorageBucket:
    from tutorapp.files.errors import BucketExists

    if await session.get(StorageBucket, bucket_id) is not None:
        raise BucketExists("The resource already exists")
    created = StorageBucket(id=bucket_id, public=public, file_size_limit=file_size_limit,
                            allowed_mime_types=allowed_mime_types)
    session.add(created)
    await session.flush()
    return created


async def update_bucket(session: AsyncSession, bucket_id: str, *, public: bool,
                        file_size_limit: int | None, allowed_mime_types: list[str] | None
                        ) -> StorageBucket:
    found = await bucket(session, bucket_id)
    found.public, found.file_size_limit = public, file_size_limit
    found.allowed_mime_types = allowed_mime_types
    await session.flush()
    return found


async def export_to_file(session: AsyncSession, store: StorageBackend, settings: Settings,
                         user: User) -> StoredObject:
    """The GDPR export as a JSON file in `exports` (kept 7 days), and an email with a
    signed link to it through the outbox (sent once the transaction commits)."""
    import orjson

    from tutorapp.accounts.service import export
    from tutorapp.files.buckets import EXPORTS
    from tutorapp.notifications.service import enqueue_email

    data = orjson.dumps(await export(session, user), default=str, option=orjson.OPT_INDENT_2)
    name = f"{user.id}/export-{utcnow().strftime('%Y%m%dT%H%M%S')}.json"
    obj = await upload(session, store, settings, Caller(user_id=user.id), EXPORTS, name,
                       Upload(chunks=content.once(data), filename="tutorapp-export.json",
                              cache_control="no-store"))
    days = (await bucket(session, EXPORTS)).expires_after_days or 7
    seconds = min(days * 86400, settings.storage_signed_url_max_seconds)
    token = sign(settings, DOWNLOAD, EXPORTS, name, seconds, oid=str(obj.id))
    from urllib.parse import quote

    link = f"{settings.public_url}/storage/v1/object/sign/{EXPORTS}/{quote(name)}?token={token}"
    if user.email:
        await enqueue_email(session, to=user.email, template="files/export_ready",
                            user_id=user.id,
                            context={"name": user.display_name, "link": link, "days": days})
    return obj


async def is_booking_tutor(session: AsyncSession, user_id: uuid.UUID, booking_id: uuid.UUID
                           ) -> bool:
    booking = await session.get(Booking, booking_id)
    return booking is not None and booking.tutor_user_id == user_id


async def rendered(store: StorageBackend, obj: StoredObject, *, width: int | None,
                   height: int | None, resize: str, fmt: str | None, quality: int,
                   before_rendering: Callable[[], Awaitable[None]] | None = None
                   ) -> tuple[bytes, str]:
    """An image transformation of `obj`, made once and then served from the store (the
    cache key names the object's bytes and the parameters; the sweep removes it with
    the object)."""
    if obj.mime_type not in content.IMAGE_FORMATS:
        raise UnsupportedType("Only images can be transformed")
    suffix = f"r{width or 0}x{height or 0}-{resize}-{fmt or 'auto'}-q{quality}"
    key = f"{obj.key}.{suffix}"
    try:
        cached = b"".join([chunk async for chunk in store.get(key)])
        if cached:
            return cached, "image/png" if fmt == "origin" else "image/webp"
    except ObjectMissing:
        pass
    if before_rendering is not None:  # a rate limit: every new size costs CPU and bytes
        await before_rendering()
    source = b"".join([chunk async for chunk in store.get(obj.key)])
    data, mime = await anyio.to_thread.run_sync(
        lambda: content.render(source, width=width, height=height, resize=resize, fmt=fmt,
                               quality=quality))
    await store.put(key, content.once(data), content_type=mime)
    return data, mime


# --- resumable (TUS) uploads: the rows; the protocol is in files/tus.py ----------------


async def start_resumable(session: AsyncSession, settings: Settings, caller: Caller,
                          bucket_id: str, name: str, *, length: int, upsert: bool,
                          cache_control: str, ttl: timedelta) -> ResumableUpload:
    target = await bucket(session, bucket_id)
    check_name(name)
    if caller.user_id is None or not _may_write_name(caller, name):
        raise AccessDenied("new row violates row-level security policy")
    if target.file_size_limit is not None and length > target.file_size_limit:
        raise TooLarge(f"The object exceeded the maximum allowed size "
                       f"({target.file_size_limit} bytes)")
    upload_row = ResumableUpload(bucket_id=bucket_id, name=name, owner_id=caller.user_id,
                                 length=length, upsert=upsert, part_keys=[],
                                 cache_control=cache_control, expires_at=utcnow() + ttl)
    session.add(upload_row)
    await session.flush()
    return upload_row


async def resumable(session: AsyncSession, caller: Caller, upload_id: uuid.UUID, *,
                    lock: bool = False) -> ResumableUpload:
    """The caller's upload in progress (404 for anyone else's)."""
    query = select(ResumableUpload).where(ResumableUpload.id == upload_id)
    found = await session.scalar(query.with_for_update() if lock else query)
    if found is None or (found.owner_id != caller.user_id and not caller.admin):
        raise ObjectNotFound("Upload not found")
    return found


async def add_part(session: AsyncSession, store: StorageBackend, settings: Settings,
                   caller: Caller, upload_id: uuid.UUID, offset: int, key: str, size: int
                   ) -> ResumableUpload:
    """Count a stored part (under the row lock: the offset must still be `offset`), and
    join the parts into the object when the last byte is in."""
    from tutorapp.files.errors import UploadOffsetMismatch

    upload_row = await resumable(session, caller, upload_id, lock=True)
    if upload_row.offset != offset:  # another PATCH got there first
        await store.delete(key)
        raise UploadOffsetMismatch(f"Upload-Offset is {upload_row.offset}")
    if size == 0:
        await store.delete(key)
    else:
        upload_row.part_keys = [*upload_row.part_keys, key]
        upload_row.offset += size
    if upload_row.offset == upload_row.length:
        parts = list(upload_row.part_keys)
        body = Upload(chunks=_joined(store, parts), filename=upload_row.name.rsplit("/", 1)[-1],
                      declared_size=upload_row.length, cache_control=upload_row.cache_control)
        owner = Caller(user_id=upload_row.owner_id, admin=caller.admin)
        await session.delete(upload_row)
        await upload(session, store, settings, owner, upload_row.bucket_id, upload_row.name,
                     body, upsert=upload_row.upsert)
        delete_after_commit(session, store, parts)
    await session.flush()
    return upload_row


async def _joined(store: StorageBackend, keys: list[str]) -> AsyncIterator[bytes]:
    for key in keys:
        async for chunk in store.get(key):
            yield chunk


async def cancel_resumable(session: AsyncSession, store: StorageBackend, caller: Caller,
                           upload_id: uuid.UUID) -> None:
    upload_row = await resumable(session, caller, upload_id, lock=True)
    parts = list(upload_row.part_keys)
    await session.delete(upload_row)
    await session.flush()
    delete_after_commit(session, store, parts)
