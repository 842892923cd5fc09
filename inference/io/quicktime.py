"""The lens a phone's video records: QuickTime metadata items (``meta`` -> ``keys`` + ``ilst``).

iPhones (and apps that copy their tags) write ``com.apple.quicktime.camera.focal_length.35mm_equivalent``
in the ``mdta`` key space, in the movie's or the video track's own ``meta`` atom; OpenCV, which
reads the frames, exposes none of it. Only the ``moov`` atom is read (the frames' data is
skipped), and a file that does not parse gives None: the caller's default stands.
"""

from __future__ import annotations

import os
import re
import struct

FOCAL_KEY = b"com.apple.quicktime.camera.focal_length.35mm_equivalent"
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"udta"}
MAX_MOOV_BYTES = 64 << 20  # a movie's index; far larger is not a movie this reader should load
MAX_DEPTH = 6  # moov > trak > mdia > minf > ...: a file nested deeper is not a camera's


def _atoms(buf: bytes, start: int, end: int):
    """(type, payload start, payload end) of the atoms in ``buf[start:end]``."""
    off = start
    while off + 8 <= end:
        size, kind = struct.unpack(">I4s", buf[off : off + 8])
        head = 8
        if size == 1 and off + 16 <= end:
            size, head = struct.unpack(">Q", buf[off + 8 : off + 16])[0], 16
        elif size == 0:
            size = end - off
        if size < head or off + size > end:
            return
        yield kind, off + head, off + size
        off += size


def _meta_items(buf: bytes, start: int, end: int) -> dict[bytes, bytes]:
    """A ``meta`` atom's items: key name -> its first ``data`` atom's payload (type + locale + value)."""
    # QuickTime's meta atom holds atoms at once; ISO's (a full box) first has 4 bytes of version and flags.
    if end - start >= 12 and buf[start + 4 : start + 8] not in (b"hdlr", b"keys", b"ilst"):
        start += 4
    keys: list[bytes] = []
    items: dict[bytes, bytes] = {}
    children = list(_atoms(buf, start, end))
    for kind, a, b in children:
        if kind == b"keys" and b - a >= 8:
            (count,) = struct.unpack(">I", buf[a + 4 : a + 8])
            off = a + 8
            for _ in range(count):
                if off + 8 > b:
                    break
                (size,) = struct.unpack(">I", buf[off : off + 4])
                if size < 8 or off + size > b:
                    break
                keys.append(buf[off + 8 : off + size])  # after the size and the key space ("mdta")
                off += size
    for kind, a, b in children:
        if kind != b"ilst":
            continue
        for index, c, d in _atoms(buf, a, b):
            (k,) = struct.unpack(">I", index)
            if not 1 <= k <= len(keys):
                continue
            data = next(((e, f) for t, e, f in _atoms(buf, c, d) if t == b"data" and f - e >= 8), None)
            if data is not None:
                items.setdefault(keys[k - 1], buf[data[0] : data[1]])
    return items


def _number(payload: bytes) -> float | None:
    """A ``data`` atom's value as a number: well-known types 21/22 (signed/unsigned integers), 23/24
    (floats), or 1 (text such as "26" or "50.00mm")."""
    kind = int.from_bytes(payload[1:4], "big")
    value = payload[8:]
    if kind in (21, 22) and len(value) in (1, 2, 4, 8):
        return float(int.from_bytes(value, "big", signed=kind == 21))
    if kind == 23 and len(value) == 4:
        return float(struct.unpack(">f", value)[0])
    if kind == 24 and len(value) == 8:
        return float(struct.unpack(">d", value)[0])
    if kind == 1:
        found = re.match(r"\s*(\d+(?:\.\d+)?)", value.decode("utf-8", "replace"))
        return float(found.group(1)) if found else None
    return None


def _moov(path: str | os.PathLike) -> bytes | None:
    """The file's ``moov`` atom (its payload), found by skipping from one top-level atom to the next."""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        total = f.tell()
        off = 0
        while off + 8 <= total:
            f.seek(off)
            head = f.read(16)
            size, kind = struct.unpack(">I4s", head[:8])
            start = off + 8
            if size == 1 and len(head) == 16:
                size, start = struct.unpack(">Q", head[8:16])[0], off + 16
            elif size == 0:
                size = total - off
            if size < start - off:
                return None
            if kind == b"moov":
                if size > MAX_MOOV_BYTES:
                    return None
                f.seek(start)
                return f.read(off + size - start)
            off += size
    return None


def recorded_focal_mm(path: str | os.PathLike) -> float | None:
    """The 35 mm equivalent focal length a video's QuickTime metadata records (the movie's own
    items first, then its tracks'), or None."""
    try:
        moov = _moov(path)
    except (OSError, struct.error):
        return None
    if moov is None:
        return None

    def search(start: int, end: int, depth: int) -> float | None:
        metas, inner = [], []
        for kind, a, b in _atoms(moov, start, end):
            (metas if kind == b"meta" else inner if kind in _CONTAINERS else []).append((a, b))
        for a, b in metas:
            payload = _meta_items(moov, a, b).get(FOCAL_KEY)
            value = _number(payload) if payload is not None else None
            if value is not None:
                return value
        for a, b in inner if depth < MAX_DEPTH else []:
            value = search(a, b, depth + 1)
            if value is not None:
                return value
        return None

    try:
        return search(0, len(moov), 0)
    except (struct.error, ValueError, IndexError):
        return None
