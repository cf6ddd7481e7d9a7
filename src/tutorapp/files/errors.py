"""The files domain's expected failures (rendered as problem+json under /api, and in
Supabase Storage's shape under /storage/v1 by `files.storage_api`)."""

from __future__ import annotations

from tutorapp.core.errors import AppError, Conflict, Forbidden, NotFound


class BucketNotFound(NotFound):
    type, title = "/problems/bucket-not-found", "Bucket not found"


class ObjectNotFound(NotFound):
    type, title = "/problems/object-not-found", "Object not found"


class ObjectExists(Conflict):
    type, title = "/problems/object-exists", "The resource already exists"


class AccessDenied(Forbidden):
    type, title = "/problems/storage-access-denied", "Access denied"


class InvalidObjectName(AppError):
    status, type, title = 400, "/problems/invalid-object-name", "Invalid object name"


class InvalidSignature(AppError):
    status, type, title = 400, "/problems/invalid-signature", "Invalid signature"


class TooLarge(AppError):
    status, type, title = 413, "/problems/too-large", "Payload too large"


class UserQuotaExceeded(AppError):
    status, type, title = 413, "/problems/storage-quota", "Storage quota exceeded"


class StorageFull(AppError):
    status, type, title = 507, "/problems/storage-full", "Insufficient storage"


class UnsupportedType(AppError):
    status, type, title = 415, "/problems/unsupported-type", "Unsupported file type"


class UploadOffsetMismatch(Conflict):
    type, title = "/problems/upload-offset", "Upload offset mismatch"


class BucketExists(Conflict):
    type, title = "/problems/bucket-exists", "The resource already exists"
