"""Phoenix channel frames as Supabase Realtime speaks them.

- vsn 1.0.0: JSON objects `{"join_ref", "ref", "topic", "event", "payload"}`.
- vsn 2.0.0: JSON arrays `[join_ref, ref, topic, event, payload]`, plus binary frames for
  user broadcasts (realtime-js `lib/serializer.ts`, Realtime's `V2Serializer`):
  client push kind 3 `<kind, join_ref_len, ref_len, topic_len, event_len, meta_len,
  encoding> join_ref ref topic event meta payload`; server kind 4 `<kind, topic_len,
  event_len, meta_len, encoding> topic event meta payload`. Encoding 0 = binary, 1 = JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

VSN_1 = "1.0.0"
VSN_2 = "2.0.0"
USER_BROADCAST_PUSH = 3
USER_BROADCAST = 4
BINARY_ENCODING = 0
JSON_ENCODING = 1


class FrameError(ValueError):
    """A frame that is not valid for the connection's serializer."""


@dataclass(frozen=True)
class Frame:
    topic: str
    event: str
    payload: Any
    ref: str | None = None
    join_ref: str | None = None


@dataclass(frozen=True)
class UserBroadcast:
    """A broadcast as it fans out: the user event and its payload, JSON or bytes."""

    topic: str
    event: str
    payload: Any  # a JSON value, or bytes when `binary`
    binary: bool = False
    meta: dict[str, Any] | None = None
    from_binary_push: bool = False  # sent as a kind-3 frame: v2 peers get kind 4

    def json_payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "broadcast", "event": self.event,
                                "payload": self.payload}
        if self.meta:
            body["meta"] = self.meta
        return body


def decode(data: str | bytes, vsn: str) -> Frame:
    """One client frame. A kind-3 binary push becomes a `broadcast` frame whose payload
    is a `UserBroadcast`."""
    if isinstance(data, bytes):
        if vsn != VSN_2:
            raise FrameError("binary frames need vsn 2.0.0")
        return _decode_push(data)
    try:
        value = json.loads(data)
    except ValueError as exc:
        raise FrameError("not JSON") from exc
    if vsn == VSN_2:
        if not isinstance(value, list) or len(value) < 5:
            raise FrameError("expected a V2 array [join_ref, ref, topic, event, payload]")
        join_ref, ref, topic, event, payload = value[:5]
    else:
        if not isinstance(value, dict):
            raise FrameError("expected a V1 object")
        join_ref, ref = value.get("join_ref"), value.get("ref")
        topic, event, payload = value.get("topic"), value.get("event"), value.get("payload")
    if not isinstance(topic, str) or not isinstance(event, str):
        raise FrameError("topic and event must be strings")
    if payload is None:
        payload = {}
    return Frame(topic=topic, event=event, payload=payload,
                 ref=None if ref is None else str(ref),
                 join_ref=None if join_ref is None else str(join_ref))


def _decode_push(data: bytes) -> Frame:
    if len(data) < 7 or data[0] != USER_BROADCAST_PUSH:
        raise FrameError("unknown binary frame kind")
    sizes = data[1:6]
    encoding = data[6]
    offset = 7
    parts: list[bytes] = []
    for size in sizes:
        parts.append(data[offset:offset + size])
        offset += size
    if offset > len(data):
        raise FrameError("binary frame shorter than its header")
    try:
        join_ref, ref, topic, event, _meta = (p.decode() for p in parts)
        body = data[offset:]
        payload: Any = json.loads(body) if encoding == JSON_ENCODING else body
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        raise FrameError("invalid binary user broadcast") from exc
    # Realtime does not forward the push's metadata; neither do we.
    message = UserBroadcast(topic=topic, event=event, payload=payload,
                            binary=encoding != JSON_ENCODING, from_binary_push=True)
    return Frame(topic=topic, event="broadcast", payload=message, ref=ref or None,
                 join_ref=join_ref or None)


def encode(frame: Frame, vsn: str) -> str:
    if vsn == VSN_2:
        return json.dumps([frame.join_ref, frame.ref, frame.topic, frame.event, frame.payload],
                          separators=(",", ":"))
    return json.dumps({"join_ref": frame.join_ref, "ref": frame.ref, "topic": frame.topic,
                       "event": frame.event, "payload": frame.payload}, separators=(",", ":"))


def encode_broadcast(message: UserBroadcast, topic: str, vsn: str) -> str | bytes | None:
    """A broadcast for one subscriber; None when its serializer cannot carry it (binary
    payloads on vsn 1.0.0, as Realtime skips them)."""
    if vsn == VSN_2 and (message.from_binary_push or message.binary):
        meta = json.dumps(message.meta).encode() if message.meta else b""
        topic_b, event_b = topic.encode(), message.event.encode()
        body = (message.payload if message.binary
                else json.dumps(message.payload, separators=(",", ":")).encode())
        header = bytes([USER_BROADCAST, len(topic_b), len(event_b), len(meta),
                        BINARY_ENCODING if message.binary else JSON_ENCODING])
        return header + topic_b + event_b + meta + body
    if message.binary:
        return None
    return encode(Frame(topic=topic, event="broadcast", payload=message.json_payload()), vsn)
