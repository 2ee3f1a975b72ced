"""Documents written over HTTP, checked by the collection's modality: texts, or page images sent as
base64 in the JSON body (decoded to PIL images before anything is written)."""

from __future__ import annotations

import base64
import binascii
import io

from maxsim.errors import InvalidInputError
from maxsim.server.checks import check_batch, check_text
from maxsim.server.limits import Limits

PAGE_HINT = ('a page collection adds pages: "image" is the base64 of a PNG, JPEG or WebP file, "text" its text '
             "layer (optional, for hybrid search)")


def checked_pages(modality: str, documents: list, limits: Limits, name=lambda i: f"document {i}") -> list | None:
    """The decoded page images of ``documents`` (``NewDocument`` or ``UpsertRequest``) in a page
    collection, None in a text one, after checking each holds what its collection stores."""
    check_batch(len(documents), "documents", limits)
    for i, document in enumerate(documents):
        if modality == "text" and document.image is not None:
            raise InvalidInputError(f"{name(i)} has an image but this collection holds texts: send its text.")
        if modality == "text" and "text" not in document.model_fields_set:
            raise InvalidInputError(f"{name(i)} has no text: send one.")
        if modality != "text" and document.image is None:
            raise InvalidInputError(f"{name(i)} has no image: {PAGE_HINT}.")
        if modality == "text" or document.text:
            check_text(document.text, f"{name(i)} text" if modality != "text" else name(i), limits.max_document_chars)
    if modality == "text":
        return None
    return [decode_image(d.image, f"{name(i)} image") for i, d in enumerate(documents)]


def decode_image(data: str, field: str):
    """``data``: the base64 of an image file (PNG, JPEG, WebP, TIFF, BMP, GIF) -> an RGB PIL image."""
    from PIL import Image, UnidentifiedImageError

    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInputError(f"{field} is not base64 ({e}): send the image file's bytes base64-encoded.") from None
    try:
        with Image.open(io.BytesIO(raw)) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise InvalidInputError(f"{field} is not an image this server can decode ({e}): send a PNG, JPEG or WebP "
                                "file.") from None
