#!/usr/bin/env python3
"""Hand-written test PDFs for signgate (deterministic, standard library only).

Writes, into the directory given as argv[1]:
  simple.pdf          1 page, classic xref table, Helvetica text
  rotated-3p.pdf      3 pages: /Rotate 0, 90 and 270 (portrait/landscape sizes mixed)
  hybrid.pdf          hybrid-reference file: classic xref table whose trailer has
                      /XRefStm pointing to a cross-reference stream that locates an
                      object held in an object stream (PDF 1.5, ISO 32000-1 7.5.8.4)
  incremental.pdf     simple.pdf plus one incremental update (/Prev chain)
  sample.pdf          one-page "Quyet dinh" style administrative decision (ASCII only,
                      standard Helvetica, so no embedded font is needed)

`make_pdfs.py normalize FILE...` pins /ID, dates and XMP uuids written by other
producers (ghostscript, cairo) to fixed values of the same length.

Used by make_corpus.sh; the outputs are committed. Byte-for-byte deterministic:
no dates, fixed /ID.
"""

import sys
import zlib
from pathlib import Path

FIXED_ID = b"<5369676E67617465546573744669786564> <5369676E67617465546573744669786564>"


def esc(text: str) -> bytes:
    """PDF literal string body for ASCII text."""
    out = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return out.encode("ascii")


def stream_obj(dict_body: bytes, data: bytes) -> bytes:
    return b"<< " + dict_body + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def text_content(lines, x=72, y=770, size=12, leading=16) -> bytes:
    parts = [b"BT", b"/F1 %d Tf" % size, b"%d TL" % leading, b"%d %d Td" % (x, y)]
    for line in lines:
        parts.append(b"(" + esc(line) + b") Tj T*")
    parts.append(b"ET")
    return b"\n".join(parts) + b"\n"


class ClassicWriter:
    """Writes objects 1..n in order followed by a classic xref table."""

    def __init__(self, version=b"1.7"):
        self.buf = bytearray(b"%PDF-" + version + b"\n%\xe2\xe3\xcf\xd3\n")
        self.offsets = {}

    def add(self, num: int, body: bytes):
        self.offsets[num] = len(self.buf)
        self.buf += b"%d 0 obj\n" % num + body + b"\nendobj\n"

    def finish(self, root: int, extra_trailer: bytes = b"", free=()) -> bytes:
        size = max(list(self.offsets) + list(free)) + 1
        xref_at = len(self.buf)
        self.buf += b"xref\n"
        # objects in `free` are left out of the table (separate subsections), as
        # hybrid-reference writers do, so readers fall through to /XRefStm
        listed = [n for n in range(0, size) if n not in free]
        runs = []
        for n in listed:
            if runs and runs[-1][-1] == n - 1:
                runs[-1].append(n)
            else:
                runs.append([n])
        for run in runs:
            self.buf += b"%d %d\n" % (run[0], len(run))
            for n in run:
                if n == 0:
                    self.buf += b"0000000000 65535 f\r\n"
                elif n in self.offsets:
                    self.buf += b"%010d 00000 n\r\n" % self.offsets[n]
                else:
                    self.buf += b"0000000000 00001 f\r\n"
        self.buf += (
            b"trailer\n<< /Size %d /Root %d 0 R /ID [" % (size, root)
            + FIXED_ID
            + b"] "
            + extra_trailer
            + b">>\nstartxref\n%d\n%%%%EOF\n" % xref_at
        )
        return bytes(self.buf)


FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def simple() -> bytes:
    w = ClassicWriter()
    w.add(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    w.add(2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    w.add(3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
             b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>")
    w.add(4, stream_obj(b"", text_content(["signgate test document: simple.pdf",
                                           "Classic cross-reference table, one page."])))
    w.add(5, FONT)
    w.add(6, b"<< /Producer (signgate make_pdfs.py) /Title (simple) >>")
    return w.finish(1, b"/Info 6 0 R ")


def rotated() -> bytes:
    w = ClassicWriter()
    w.add(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    w.add(2, b"<< /Type /Pages /Kids [3 0 R 5 0 R 7 0 R] /Count 3 "
             b"/Resources << /Font << /F1 9 0 R >> >> >>")
    pages = [
        (3, 0, b"[0 0 595 842]", "Page 1 of 3: /Rotate 0 (portrait A4)"),
        (5, 90, b"[0 0 595 842]", "Page 2 of 3: /Rotate 90 (shown landscape)"),
        (7, 270, b"[0 0 842 595]", "Page 3 of 3: /Rotate 270, landscape MediaBox"),
    ]
    for num, rot, box, label in pages:
        rot_entry = b" /Rotate %d" % rot if rot else b""
        w.add(num, b"<< /Type /Page /Parent 2 0 R /MediaBox " + box + rot_entry
                   + b" /Contents %d 0 R >>" % (num + 1))
        y = 800 if box == b"[0 0 595 842]" else 550
        w.add(num + 1, stream_obj(b"", text_content([label], y=y)))
    w.add(9, FONT)
    return w.finish(1)


def hybrid() -> bytes:
    """Classic table for objects 1-4 and 7; font (5) lives in object stream 6,
    located only by the cross-reference stream (7) named by /XRefStm."""
    w = ClassicWriter(b"1.5")
    w.add(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    w.add(2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    w.add(3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
             b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>")
    w.add(4, stream_obj(b"/Filter /FlateDecode", zlib.compress(text_content(
        ["signgate test document: hybrid.pdf",
         "Classic xref table + /XRefStm cross-reference stream."]), 9)))
    # object stream 6 holding object 5
    header = b"5 0 "
    objstm_data = header + FONT
    w.add(6, stream_obj(b"/Type /ObjStm /N 1 /First %d" % len(header), objstm_data))
    # cross-reference stream 7: entries for objects 5 (compressed in 6) and 7 (itself)
    xrefstm_at = len(w.buf)
    rows = bytes([2]) + (6).to_bytes(2, "big") + (0).to_bytes(2, "big")
    rows += bytes([1]) + xrefstm_at.to_bytes(4, "big")[2:] + (0).to_bytes(2, "big")
    assert xrefstm_at < 65536
    w.add(7, stream_obj(b"/Type /XRef /Size 8 /W [1 2 2] /Index [5 1 7 1]", rows))
    assert w.offsets[7] == xrefstm_at
    # object 5 is not in the classic table: only the xref stream locates it
    return w.finish(1, b"/XRefStm %d " % xrefstm_at, free=(5,))


def sample() -> bytes:
    lines_top = [
        "UY BAN NHAN DAN TINH MAU",             # left header
    ]
    body = [
        "CONG HOA XA HOI CHU NGHIA VIET NAM",
        "Doc lap - Tu do - Hanh phuc",
        "",
        "So: 123/QD-UBND                       Mau, ngay 01 thang 7 nam 2025",
        "",
        "QUYET DINH",
        "Ve viec phe duyet ke hoach chuyen doi so nam 2025",
        "",
        "CHU TICH UY BAN NHAN DAN TINH MAU",
        "",
        "Can cu Luat To chuc chinh quyen dia phuong ngay 19 thang 6 nam 2015;",
        "Can cu Luat Giao dich dien tu ngay 22 thang 6 nam 2023;",
        "Xet de nghi cua Giam doc So Thong tin va Truyen thong,",
        "",
        "QUYET DINH:",
        "Dieu 1. Phe duyet ke hoach chuyen doi so nam 2025 (kem theo).",
        "Dieu 2. Quyet dinh nay co hieu luc ke tu ngay ky.",
        "Dieu 3. Chanh Van phong UBND tinh va cac don vi lien quan chiu trach",
        "        nhiem thi hanh Quyet dinh nay.",
        "",
        "Noi nhan:                                         CHU TICH",
        "- Nhu Dieu 3;",
        "- Luu: VT.",
    ]
    content = text_content(lines_top, y=800, size=10) + text_content(body, y=760, size=11, leading=18)
    w = ClassicWriter()
    w.add(1, b"<< /Type /Catalog /Pages 2 0 R /Lang (vi-VN) >>")
    w.add(2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    w.add(3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
             b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>")
    w.add(4, stream_obj(b"/Filter /FlateDecode", zlib.compress(content, 9)))
    w.add(5, FONT)
    w.add(6, b"<< /Producer (signgate make_pdfs.py) /Title (Quyet dinh 123/QD-UBND) >>")
    return w.finish(1, b"/Info 6 0 R ")


def incremental(base: bytes) -> bytes:
    """simple.pdf plus one incremental update (new /Info, /Prev chain)."""
    start = base.rindex(b"startxref\n") + len(b"startxref\n")
    prev = int(base[start:].split(b"\n", 1)[0])
    buf = bytearray(base)
    off = len(buf)
    buf += b"6 0 obj\n<< /Producer (signgate make_pdfs.py) /Title (simple, updated) >>\nendobj\n"
    xref_at = len(buf)
    buf += b"xref\n0 1\n0000000000 65535 f\r\n6 1\n%010d 00000 n\r\n" % off
    buf += (b"trailer\n<< /Size 7 /Root 1 0 R /Info 6 0 R /Prev %d /ID [" % prev + FIXED_ID
            + b"] >>\nstartxref\n%d\n%%%%EOF\n" % xref_at)
    return bytes(buf)


def normalize(path: Path):
    """Pin the volatile bits other producers write (/ID, dates, XMP uuids) to fixed
    values of the same length, so byte offsets stay valid and outputs reproducible."""
    import re
    data = path.read_bytes()
    data = re.sub(rb"/ID\s*\[\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>",
                  lambda m: m.group(0).replace(m.group(1), b"A" * len(m.group(1)))
                  .replace(m.group(2), b"A" * len(m.group(2))), data)
    data = re.sub(rb"D:\d{14}", b"D:20250701093000", data)
    data = re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", b"2025-07-01T09:30:00", data)
    data = re.sub(rb"uuid:[0-9a-f-]{36}", b"uuid:00000000-0000-0000-0000-000000000000", data)
    path.write_bytes(data)


def main():
    if sys.argv[1] == "normalize":
        for name in sys.argv[2:]:
            normalize(Path(name))
        return
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, fn in [("simple.pdf", simple), ("rotated-3p.pdf", rotated),
                     ("hybrid.pdf", hybrid), ("sample.pdf", sample)]:
        (out / name).write_bytes(fn())
    (out / "incremental.pdf").write_bytes(incremental(simple()))


if __name__ == "__main__":
    main()
