"""Draw the PWA icons (192, 512, maskable 512) as PNG with the standard library only.

The design: a rounded blue square with a white open book ("T" for tutor as the spine).
Run `python tools/make_icons.py` after changing it; the PNGs are committed.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src" / "tutorapp" / "static" / "img"
BLUE = (31, 95, 191)
WHITE = (255, 255, 255)


def png(width: int, height: int, pixel) -> bytes:  # noqa: ANN001
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows.extend(pixel(x, y))
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b""))


def icon(size: int, *, maskable: bool) -> bytes:
    radius = 0 if maskable else size * 0.18
    # the glyph sits inside the maskable safe zone (80 % circle) either way
    scale = 0.6 if maskable else 0.72
    left, top = size * (1 - scale) / 2, size * (1 - scale) / 2
    unit = size * scale

    def inside_rounded(x: float, y: float) -> bool:
        if radius == 0:
            return True
        cx = min(max(x, radius), size - radius)
        cy = min(max(y, radius), size - radius)
        return (x - cx) ** 2 + (y - cy) ** 2 <= radius ** 2

    def glyph(x: float, y: float) -> bool:
        u, v = (x - left) / unit, (y - top) / unit
        if not (0 <= u <= 1 and 0 <= v <= 1):
            return False
        top_bar = 0.08 <= v <= 0.24 and 0.12 <= u <= 0.88          # the T's bar
        stem = 0.24 <= v <= 0.62 and 0.42 <= u <= 0.58               # the T's stem
        book_left = 0.68 <= v <= 0.9 and 0.06 <= u <= 0.47 and v >= 0.68 + (0.47 - u) * 0.12
        book_right = 0.68 <= v <= 0.9 and 0.53 <= u <= 0.94 and v >= 0.68 + (u - 0.53) * 0.12
        return top_bar or stem or book_left or book_right

    def pixel(x: int, y: int) -> tuple[int, int, int, int]:
        cx, cy = x + 0.5, y + 0.5
        if not inside_rounded(cx, cy):
            return (0, 0, 0, 0)
        return (*WHITE, 255) if glyph(cx, cy) else (*BLUE, 255)

    return png(size, size, pixel)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "icon-192.png").write_bytes(icon(192, maskable=False))
    (OUT / "icon-512.png").write_bytes(icon(512, maskable=False))
    (OUT / "icon-maskable-512.png").write_bytes(icon(512, maskable=True))


if __name__ == "__main__":
    main()
