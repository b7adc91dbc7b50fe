#!/usr/bin/env python3
"""Regenerates the sample images used by the visible-signature tests.

    python3 tests/data/images/make_images.py

Writes assets/seal.png (the demo gateway's built-in seal) and, next to this script:
- seal.png (into assets/): a red round seal (600x600 RGBA, transparent outside the rings):
  two rings, a ring of dots where a real seal has its text, and a five-point star.
- signature.png: a blue handwritten-like stroke on a transparent background (600x250 RGBA).

Standard library only (zlib + struct); the output is byte-for-byte deterministic.
"""
import math
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def write_png(path, width, height, rgba_rows):
    """Writes 8-bit RGBA rows (each a bytes object of width*4) as a PNG file."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + row for row in rgba_rows)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def clamp01(v):
    return 0.0 if v < 0.0 else 1.0 if v > 1.0 else v


def star_polygon(cx, cy, r_out, r_in, points=5):
    poly = []
    for i in range(points * 2):
        r = r_out if i % 2 == 0 else r_in
        a = -math.pi / 2 + i * math.pi / points
        poly.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return poly


def inside(poly, x, y):
    hit = False
    n = len(poly)
    for i in range(n):
        x1, y1 = poly[i]
        x2, y2 = poly[(i + 1) % n]
        if (y1 > y) != (y2 > y):
            xi = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
            if x < xi:
                hit = not hit
    return hit


def make_seal():
    size = 600
    c = size / 2.0
    red = (204, 20, 28)
    star = star_polygon(c, c, 95, 38)
    dots = []
    for i in range(36):
        a = 2 * math.pi * i / 36
        dots.append((c + 237 * math.cos(a), c + 237 * math.sin(a)))
    rows = []
    for y in range(size):
        row = bytearray()
        for x in range(size):
            px, py = x + 0.5, y + 0.5
            d = math.hypot(px - c, py - c)
            # rings: anti-aliased by distance to the ring's edges
            a = max(
                clamp01(min(d - 268.0, 292.0 - d) + 0.5),  # outer ring, 24 px wide
                clamp01(min(d - 200.0, 208.0 - d) + 0.5),  # inner ring, 8 px wide
            )
            if 215 < d < 260:
                for (dx, dy) in dots:
                    a = max(a, clamp01(9.0 - math.hypot(px - dx, py - dy) + 0.5))
            if d < 100:
                # 2x2 supersampling for the star's edges
                hits = sum(inside(star, x + ox, y + oy) for ox in (0.25, 0.75) for oy in (0.25, 0.75))
                a = max(a, hits / 4.0)
            row += bytes((red[0], red[1], red[2], int(round(a * 255))))
        rows.append(bytes(row))
    write_png(os.path.join(HERE, "..", "..", "..", "assets", "seal.png"), size, size, rows)


def make_signature():
    w, h = 600, 250
    blue = (22, 42, 160)
    alpha = [[0.0] * w for _ in range(h)]

    def stamp(cx, cy, r):
        for y in range(max(0, int(cy - r - 2)), min(h, int(cy + r + 3))):
            line = alpha[y]
            for x in range(max(0, int(cx - r - 2)), min(w, int(cx + r + 3))):
                v = clamp01(r + 0.5 - math.hypot(x + 0.5 - cx, y + 0.5 - cy))
                if v > line[x]:
                    line[x] = v

    def stroke(f, steps, r0, r1):
        for i in range(steps + 1):
            t = i / steps
            x, y = f(t)
            # the pen presses harder in the middle of a stroke
            stamp(x, y, r0 + (r1 - r0) * math.sin(math.pi * t))

    # a looping cursive line, growing then fading
    def cursive(t):
        env = 0.55 + 0.45 * math.sin(math.pi * min(1.0, t * 1.3))
        x = 50 + 470 * t + 28 * math.cos(2 * math.pi * 5.5 * t)
        y = 120 - 62 * env * math.sin(2 * math.pi * 5.5 * t) + 18 * math.sin(2 * math.pi * t)
        return x, y

    # a tall initial stroke on the left
    def initial(t):
        return 70 + 40 * math.sin(math.pi * t) - 10 * t, 30 + 150 * t

    # an underline flourish
    def flourish(t):
        return 40 + 530 * t, 205 - 25 * math.sin(math.pi * t) + 8 * math.sin(3 * math.pi * t)

    stroke(initial, 400, 2.0, 4.0)
    stroke(cursive, 3000, 2.0, 3.6)
    stroke(flourish, 1200, 1.2, 3.0)
    rows = []
    for y in range(h):
        row = bytearray()
        for x in range(w):
            row += bytes((blue[0], blue[1], blue[2], int(round(alpha[y][x] * 255))))
        rows.append(bytes(row))
    write_png(os.path.join(HERE, "signature.png"), w, h, rows)


if __name__ == "__main__":
    make_seal()
    make_signature()
