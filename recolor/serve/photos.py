"""One photo through the API: upload bytes -> the same reader as `recolor image` -> the engine -> PNG/JPEG/WebP.

Runs in a worker thread while the request holds the device (see device.py): decoding, colour and encoding of
one photo at a time, so memory stays bounded by one photo however many are dropped at once.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..defaults import PHOTO_RENDER_FACTOR, RENDER_FACTOR_MAX, RENDER_FACTOR_MIN
from ..hints import HintError, loads_hints
from ..images import PIL_BOMB_PIXELS, ImageError, encode_image, probe, read_image
from .errors import ApiError
from .forms import display_name, form_choice, form_file, form_int, form_text

HINTS_CHARS = 100_000  # a hints field longer than this is refused: ~2,000 points, more than anyone clicks
FORMATS = {"png": (".png", "image/png"), "jpeg": (".jpg", "image/jpeg"), "jpg": (".jpg", "image/jpeg"),
           "webp": (".webp", "image/webp")}


@dataclass(frozen=True)
class PhotoRequest:
    """What a POST /api/colorize asks for, checked; the bytes are read while the request holds its slot."""
    name: str  # the upload's file name, for messages
    model: str
    render_factor: int
    format: str
    hints: list  # hints.Hint points in the photo's pixels (EXIF-upright)
    photo: bytes
    reference: bytes | None
    reference_name: str


async def read_photo_request(form, models, default_model: str) -> PhotoRequest:
    photo = form_file(form, "file")
    reference = form_file(form, "reference", required=False)
    hints, reference_path = parse_hints(form_text(form, "hints"))
    if reference_path is not None:
        raise ApiError(400, 'hints: "reference" cannot be a path on this server; send the reference photo as '
                            'the file part "reference"')
    return PhotoRequest(
        name=display_name(photo.filename, "photo"),
        model=form_choice(form, "model", default_model, list(models)),
        render_factor=form_int(form, "render_factor", PHOTO_RENDER_FACTOR, RENDER_FACTOR_MIN, RENDER_FACTOR_MAX),
        format=form_choice(form, "format", "png", list(FORMATS)),
        hints=hints,
        photo=await photo.read(),
        reference=await reference.read() if reference is not None else None,
        reference_name=display_name(reference.filename if reference else None, "reference"))


def parse_hints(text: str | None) -> tuple[list, str | None]:
    """The `hints` field: the JSON of `recolor image --hints` -> (hints, reference path or None)."""
    if text is None:
        return [], None
    if len(text) > HINTS_CHARS:
        raise ApiError(413, f"hints: {len(text):,} characters, over this server's limit of {HINTS_CHARS:,}")
    try:
        return loads_hints(text)
    except HintError as e:
        raise ApiError(400, f"hints: {e}") from None


def colorize_photo(colorizer, request: PhotoRequest, folder: Path, max_pixels: int) -> tuple[bytes, str]:
    """The request -> (encoded colour image of the same size, its media type). Runs holding the device."""
    image = read_upload(request.photo, request.name, folder, max_pixels)
    reference = None
    if request.reference is not None:
        reference = read_upload(request.reference, request.reference_name, folder, max_pixels)
    try:
        result = colorizer.colorize(image, request.render_factor, hints=request.hints or None, reference=reference)
    except HintError as e:
        raise ApiError(400, f"hints: {e}") from None
    suffix, media_type = FORMATS[request.format]
    return encode_image(result, suffix), media_type


def read_upload(data: bytes, name: str, folder: Path, max_pixels: int) -> np.ndarray:
    """Uploaded bytes -> RGB(A) array, EXIF-upright: `images.read_image` on a temp file the server names, so a
    photo decodes, turns and fails exactly as with `recolor image`. Over the pixel limit is a 413."""
    if not data:
        raise ApiError(400, f"{name}: empty file (0 bytes)")
    path = folder / f"{uuid.uuid4().hex}.upload"
    path.write_bytes(data)
    try:
        width, height, _ = probe(path)
        if (width < 0 and max_pixels < PIL_BOMB_PIXELS) or width * height > max_pixels:  # -1: too big for Pillow
            size = "" if width < 0 else f"{width}×{height} = {width * height:,} pixels, "
            raise ApiError(413, f"{name}: {size}over this server's limit of {max_pixels:,} pixels")
        return read_image(path, max_pixels)
    except ImageError as e:
        raise ApiError(400, f"{name}: {str(e).removeprefix(f'{path}: ')}") from None
    finally:
        path.unlink(missing_ok=True)
