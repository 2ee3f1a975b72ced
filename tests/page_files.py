"""Page files for the tests: PDFs with a real text layer, random images, and a folder of pages with a
damaged PDF and an image no library can decode."""

from __future__ import annotations

import numpy as np
from PIL import Image

TEXTS = ["Revenue grew", "Assets and liabilities", "Outlook"]


def text_pdf(texts: list[str], width: int = 300, height: int = 200) -> bytes:
    """A PDF with one page per text, written in Helvetica: a real text layer, byte offsets exact."""
    count = len(texts)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(count))
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {count} >>",
               "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, text in enumerate(texts):
        stream = f"BT /F1 18 Tf 20 {height // 2} Td ({text}) Tj ET".encode()
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] "
                       f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>")
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def image(seed: int, size=(40, 30)) -> Image.Image:
    """A random RGB image of ``size`` (width, height)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def page_folder(root, damaged: bool = True):
    """``root`` with reports/annual.pdf (3 pages with text), scans/a.png, scans/b.jpg (tall) and
    scans/c.webp (wide); ``damaged``: also broken.pdf (a damaged PDF) and scans/noise.png (bytes no
    image library decodes). 6 pages read."""
    (root / "reports").mkdir(parents=True)
    (root / "scans").mkdir()
    (root / "reports" / "annual.pdf").write_bytes(text_pdf(TEXTS))
    image(0, (48, 64)).save(root / "scans" / "a.png")
    image(1, (40, 90)).save(root / "scans" / "b.jpg")
    image(2, (90, 40)).save(root / "scans" / "c.webp")
    if damaged:
        pdf = text_pdf(["one", "two"])
        (root / "broken.pdf").write_bytes(pdf[: len(pdf) // 3])
        (root / "scans" / "noise.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x13" * 200)
    return root
