#!/usr/bin/env python3
"""Draws kernel/logo-32x32.png and kernel/logo-64x64.png with the standard library only.

The picture: a rust-orange disc with one white "parent" dot at the top that forks into
three "worker" dots below it (a process pool). Run: python3 scripts/make_logo.py
"""
import math
import os
import struct
import zlib

ORANGE = (206, 66, 43)
WHITE = (255, 255, 255)


def shade(x, y):
    """Colour (r, g, b, a) of the point (x, y) of the unit square, or None outside the logo."""
    cx, cy = 0.5, 0.5
    if (x - cx) ** 2 + (y - cy) ** 2 > 0.48 ** 2:
        return None
    parent = (0.5, 0.27)
    workers = [(0.25, 0.72), (0.5, 0.72), (0.75, 0.72)]
    for px, py in [parent] + workers:
        if (x - px) ** 2 + (y - py) ** 2 <= 0.095 ** 2:
            return WHITE
    # lines from the parent to each worker
    for wx, wy in workers:
        dx, dy = wx - parent[0], wy - parent[1]
        t = max(0.0, min(1.0, ((x - parent[0]) * dx + (y - parent[1]) * dy) / (dx * dx + dy * dy)))
        qx, qy = parent[0] + t * dx, parent[1] + t * dy
        if math.hypot(x - qx, y - qy) <= 0.035:
            return WHITE
    return ORANGE


def render(size, ss=4):
    rows = []
    for j in range(size):
        row = bytearray([0])  # filter type 0
        for i in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sj in range(ss):
                for si in range(ss):
                    c = shade((i + (si + 0.5) / ss) / size, (j + (sj + 0.5) / ss) / size)
                    if c is not None:
                        for k in range(3):
                            acc[k] += c[k]
                        acc[3] += 1
            n = ss * ss
            a = acc[3] / n
            if acc[3]:
                row += bytes(round(acc[k] / acc[3]) for k in range(3)) + bytes([round(255 * a)])
            else:
                row += bytes(4)
        rows.append(bytes(row))
    return b"".join(rows)


def png(size):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(render(size), 9)) + chunk(b"IEND", b""))


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernel")
    for size in (32, 64):
        path = os.path.join(out, f"logo-{size}x{size}.png")
        with open(path, "wb") as f:
            f.write(png(size))
        print("wrote", os.path.normpath(path))
