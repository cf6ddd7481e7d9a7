"""Tutor search: full text, filters, sorts and keyset pagination.

Full text: PostgreSQL matches `tutor_profiles.search_vector` (a generated tsvector
with a GIN index); SQLite matches the FTS5 table `tutor_search`. Words are prefix
matched ("alg" finds "algebra") and all must match.

Sorts: `relevance` (needs `q`; otherwise it falls back to rating), `rating`
(average, best first), `soonest` (the first free slot in the free-time window,
earliest first; tutors with none are left out). There is no price filter or sort:
a lesson costs one credit with any tutor (docs/billing.md, "The money model").
Every order ends with the id (in the sort's direction), and the cursor carries the
last row's sort key and id,
so pages never skip or repeat a tutor while the data is unchanged.

Free time (`free_from`/`free_to` in the viewer's zone, or `sort=soonest`) is
computed from availability, not stored: candidates are scanned in sort order, at
most `search_free_time_scan_max` per page; the cursor resumes after the last tutor
scanned, so a page may hold fewer items than `limit` while `next_cursor` is set.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    exists,
    func,
    literal_column,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import load_only

from tutorapp.config import Settings
from tutorapp.core.errors import InvalidInput
from tutorapp.core.fields import cursor_float, cursor_moment
from tutorapp.scheduling import availability
from tutorapp.tutors import schemas
from tutorapp.tutors.models import (
    Language,
    Level,
    ProfileStatus,
    Subject,
    TutorLanguage,
    TutorProfile,
    TutorSubject,
)
from tutorapp.tutors.service import languages_of, subjects_of

SORTS = ("relevance", "rating", "soonest")
# A result row needs these columns only (not the bio or the search text); any other
# attribute access raises instead of loading silently.
SEARCH_COLUMNS = load_only(
    TutorProfile.id, TutorProfile.user_id, TutorProfile.display_name, TutorProfile.headline,
    TutorProfile.rating_avg, TutorProfile.rating_count, TutorProfile.photo_ref, TutorProfile.time_zone,
    TutorProfile.lesson_lengths, TutorProfile.min_notice_minutes, TutorProfile.horizon_days,
    TutorProfile.buffer_minutes, TutorProfile.status, raiseload=True,
)
DEFAULT_SOONEST_DAYS = 14


@dataclass
class Query:
    q: str | None = None
    subject: str | None = None  # a subject id or path: the subject and its descendants
    level: Level | None = None
    language: str | None = None
    min_rating: float | None = None
    free_from: datetime | None = None
    free_to: datetime | None = None
    length: int | None = None
    sort: str = "relevance"
    limit: int = 20
    cursor: str | None = None


def _words(q: str | None) -> list[str]:
    return re.findall(r"[^\W_]+", (q or "").lower())[:12]


def encode_cursor(sort: str, key: Any, tutor_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([sort, key, str(tutor_id)])).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[Any, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        kind, key, tutor_id = orjson.loads(raw)
        if kind != sort or not isinstance(tutor_id, str):
            raise ValueError("sort changed")
        # Strict: a crafted key must not reach the database (a naive or year-9999
        # moment, NaN, a huge rank) but answer 422 like any bad cursor.
        if sort == "rating":
            key = cursor_float(key, lo=0, hi=5)
        elif sort == "relevance":
            key = cursor_float(key, lo=-1e6, hi=1e6)
        elif sort == "soonest":
            key = cursor_moment(key)
        return key, uuid.UUID(tutor_id)
    except (ValueError, TypeError, OverflowError, orjson.JSONDecodeError):
        raise InvalidInput("cursor", "not a cursor of this search; start again without it",
                           location="query") from None


def _rank_and_filter(stmt: Select, words: list[str], dialect: str) -> tuple[Select, Any]:
    if dialect == "postgresql":
        tsquery = func.to_tsquery("simple", " & ".join(f"{w}:*" for w in words))
        vector: ColumnElement[Any] = literal_column("tutor_profiles.search_vector")
        return stmt.where(vector.op("@@")(tsquery)), func.ts_rank(vector, tsquery)
    fts = text(
        "SELECT rowid AS search_rowid, -bm25(tutor_search) AS rank FROM tutor_search "
        "WHERE tutor_search MATCH :match"
    ).bindparams(match=" ".join(f'"{w}"*' for w in words)).columns(
        literal_column("search_rowid"), literal_column("rank")
    ).subquery("fts")
    stmt = stmt.join(fts, fts.c.search_rowid == TutorProfile.search_rowid)
    return stmt, fts.c.rank


async def _subject_path(session: AsyncSession, subject: str) -> str:
    try:
        path = await session.scalar(select(Subject.path).where(Subject.id == uuid.UUID(subject)))
    except ValueError:
        path = await session.scalar(select(Subject.path).where(Subject.path == subject))
    if path is None:
        raise InvalidInput("subject", "no such subject (give its id or path)", location="query")
    return path


async def search(session: AsyncSession, query: Query, *, settings: Settings, now: datetime,
                 dialect: str) -> schemas.SearchPage:
    if query.sort not in SORTS:
        raise InvalidInput("sort", f"one of {', '.join(SORTS)}", location="query")
    words = _words(query.q)
    sort = query.sort
    if sort == "relevance" and not words:
        sort = "rating"
    stmt = select(TutorProfile).options(SEARCH_COLUMNS).where(
        TutorProfile.status == ProfileStatus.approved)
    rank = None
    if words:
        stmt, rank = _rank_and_filter(stmt, words, dialect)
    if query.subject is not None or query.level is not None:
        conditions = [TutorSubject.tutor_id == TutorProfile.id]
        if query.level is not None:
            conditions.append(TutorSubject.level == query.level)
        if query.subject is not None:
            path = await _subject_path(session, query.subject)
            descendants = select(Subject.id).where(
                or_(Subject.path == path, Subject.path.startswith(path + "/", autoescape=True))
            )
            conditions.append(TutorSubject.subject_id.in_(descendants))
        stmt = stmt.where(exists().where(and_(*conditions)))
    if query.language is not None:
        stmt = stmt.where(exists().where(
            TutorLanguage.tutor_id == TutorProfile.id,
            TutorLanguage.language_id.in_(select(Language.id).where(Language.code == query.language)),
        ))
    if query.min_rating is not None:
        stmt = stmt.where(TutorProfile.rating_count > 0, TutorProfile.rating_avg >= query.min_rating)

    free_window = None
    if query.free_from is not None or query.free_to is not None or sort == "soonest":
        lo = query.free_from or now
        hi = query.free_to or lo + timedelta(days=DEFAULT_SOONEST_DAYS)
        if hi <= lo:
            raise InvalidInput("free_to", "must be after free_from", location="query")
        if hi - lo > timedelta(days=settings.slots_max_days):
            raise InvalidInput("free_to", f"at most {settings.slots_max_days} days after free_from",
                               location="query")
        free_window = (lo, hi)

    if sort == "soonest" and free_window is not None:  # always set for "soonest", above
        return await _soonest(session, stmt, query, settings=settings, now=now, window=free_window)

    key_column: Any
    if sort == "relevance":
        key_column, descending = rank, True
    else:
        key_column, descending = TutorProfile.rating_avg, True
    # Row-value comparison (key, id) < / > (cursor): one index range on PostgreSQL. Ties
    # are broken by the id in the same direction, so (status, key, id) serves both ways.
    def after(key: Any, after_id: uuid.UUID) -> Any:
        row = tuple_(key_column, TutorProfile.id)
        return row < tuple_(key, after_id) if descending else row > tuple_(key, after_id)

    if query.cursor:
        stmt = stmt.where(after(*decode_cursor(query.cursor, sort)))
    keyed = stmt.add_columns(key_column.label("sort_key")).order_by(
        *((key_column.desc(), TutorProfile.id.desc()) if descending
          else (key_column.asc(), TutorProfile.id.asc()))
    )

    if free_window is None:
        rows = (await session.execute(keyed.limit(query.limit + 1))).all()
        page = rows[: query.limit]
        next_cursor = (encode_cursor(sort, page[-1][1], page[-1][0].id)
                       if len(rows) > query.limit else None)
        return await _page(session, [(p, None) for p, _ in page], next_cursor)

    items: list[tuple[TutorProfile, datetime | None]] = []
    last: tuple[Any, uuid.UUID] | None = None
    exhausted = False
    scanned = 0
    batch = max(query.limit, 50)
    while len(items) < query.limit:
        rows = (await session.execute(keyed.limit(batch))).all()
        if not rows:
            exhausted = True
            break
        firsts = await availability.first_slots(
            session, [r[0] for r in rows], *free_window, settings=settings, now=now,
            length=query.length)
        for profile, key in rows:
            scanned += 1
            last = (key, profile.id)
            if firsts.get(profile.id) is not None:
                items.append((profile, firsts.get(profile.id)))
                if len(items) == query.limit:
                    break
        if len(rows) < batch and len(items) < query.limit:
            exhausted = True
            break
        if scanned >= settings.search_free_time_scan_max:
            break
        if last is None:  # rows was not empty, so the loop set it
            break
        keyed = keyed.where(after(*last))
    next_cursor = None
    if not exhausted and last is not None:
        next_cursor = encode_cursor(sort, last[0], last[1])
    return await _page(session, items, next_cursor)


async def _soonest(session: AsyncSession, stmt: Select, query: Query, *, settings: Settings,
                   now: datetime, window: tuple[datetime, datetime]) -> schemas.SearchPage:
    """Soonest free slot first: computed for up to `search_free_time_scan_max` tutors (by
    rating), then sorted by (first slot, id) and paged by that key."""
    stmt = stmt.order_by(TutorProfile.rating_avg.desc(), TutorProfile.id).limit(
        settings.search_free_time_scan_max)
    profiles = list(await session.scalars(stmt))
    firsts = await availability.first_slots(session, profiles, *window, settings=settings, now=now,
                                            length=query.length)
    ranked = sorted(((first, p.id, p) for p in profiles if (first := firsts[p.id]) is not None),
                    key=lambda t: (t[0], t[1]))
    if query.cursor:
        key, after_id = decode_cursor(query.cursor, "soonest")
        ranked = [t for t in ranked if (t[0], t[1]) > (key, after_id)]
    page = ranked[: query.limit]
    next_cursor = None
    if len(ranked) > query.limit:
        next_cursor = encode_cursor("soonest", page[-1][0].isoformat(), page[-1][1])
    return await _page(session, [(p, first) for first, _, p in page], next_cursor)


async def _page(session: AsyncSession, items: list[tuple[TutorProfile, datetime | None]],
                next_cursor: str | None) -> schemas.SearchPage:
    ids = [p.id for p, _ in items]
    subjects = await subjects_of(session, ids)
    languages = await languages_of(session, ids)
    return schemas.SearchPage(
        items=[schemas.SearchItem(
            id=p.id, display_name=p.display_name, headline=p.headline,
            rating=schemas.Rating(average=round(p.rating_avg, 2), count=p.rating_count),
            photo_ref=p.photo_ref, time_zone=p.time_zone, subjects=subjects[p.id],
            languages=[lang.code for lang in languages[p.id]], next_free_slot=first,
        ) for p, first in items],
        next_cursor=next_cursor,
    )
