"""Reading, finding and writing image files: the only module of the image path that touches the disk.

Errors are `ImageError`s that name the file, so a batch can report them and go on. Outputs are written
atomically (temp file + rename) and never clobber an existing file unless asked to.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import cv2
import numpy as np

from .atomic import OutputExists, publish, temp_path
from .defaults import MAX_PIXELS

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
JPEG_QUALITY = 95
EXIF_ORIENTATION = 0x0112
PIL_BOMB_PIXELS = 2 * 89_478_485  # Pillow refuses to even open images over this (DecompressionBombError)


class ImageError(Exception):
    """A file that cannot be read or written as an image; the message names the file."""


def find_images(root: Path) -> list[Path]:
    """Image files under a folder, recursively, sorted; hidden files and folders skipped."""
    found = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).parts
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS and not any(p.startswith(".") for p in rel):
            found.append(path)
    return found


def probe(path: Path) -> tuple[int, int, int]:
    """(width, height, EXIF orientation 1-8) from the file header, without decoding the pixels.
    Width and height are -1 for an image too big for Pillow's own bomb check (the caller's limit decides)."""
    from PIL import Image, UnidentifiedImageError
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit, clearer message
            with Image.open(path) as im:
                return (*im.size, int(im.getexif().get(EXIF_ORIENTATION, 1) or 1))
    except Image.DecompressionBombError:
        return -1, -1, 1
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image (unrecognised format)") from None
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """File -> RGB or RGBA array (uint8 or uint16; gray comes back as H×W), turned upright as a viewer shows
    it (EXIF orientation applied: the output carries no EXIF, so its pixels must already stand right)."""
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    width, height, orientation = probe(path)
    if width < 0 and max_pixels < PIL_BOMB_PIXELS:
        raise ImageError(f"{path}: over {PIL_BOMB_PIXELS / 1e6:.0f} MP, over the limit of "
                         f"{max_pixels / 1e6:.0f} MP (raise it with --max-pixels)")
    if width * height > max_pixels:
        raise ImageError(f"{path}: {width}×{height} is {width * height / 1e6:.0f} MP, over the limit of "
                         f"{max_pixels / 1e6:.0f} MP (raise it with --max-pixels)")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise ImageError(f"{path}: cannot read ({e.strerror or e})") from None
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # keeps alpha and 16 bits, but ignores EXIF orientation
    if image is None or image.size == 0:
        raise ImageError(f"{path}: cannot decode (truncated or corrupt)")
    if image.dtype not in (np.uint8, np.uint16):
        image = to_8bit(image)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return np.ascontiguousarray(upright(image, orientation))


TRANSPOSED = (5, 6, 7, 8)  # EXIF orientations whose stored rows are the shown columns


def upright_size(path: Path) -> tuple[int, int]:
    """(width, height) as a viewer shows the photo (EXIF orientation applied), from the header alone."""
    width, height, orientation = probe(path)
    return (height, width) if orientation in TRANSPOSED else (width, height)


def upright(image: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8, as Pillow's ImageOps.exif_transpose does) to an H×W(×C) array."""
    if orientation in TRANSPOSED:
        image = image.swapaxes(0, 1)
    flip_rows, flip_cols = {2: (False, True), 3: (True, True), 4: (True, False), 6: (False, True),
                            7: (True, True), 8: (True, False)}.get(orientation, (False, False))
    return image[::-1 if flip_rows else 1, ::-1 if flip_cols else 1]


def to_8bit(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return (image.astype(np.float32) / 257.0 + 0.5).astype(np.uint8)
    scale = 255.0 if np.issubdtype(image.dtype, np.floating) else 255.0 / max(1, np.iinfo(image.dtype).max)
    return np.clip(image.astype(np.float32) * scale + 0.5, 0, 255).astype(np.uint8)


def encode_image(image: np.ndarray, suffix: str) -> bytes:
    """RGB(A) array -> encoded bytes for the format named by suffix; alpha is dropped where it cannot go."""
    suffix = suffix.lower()
    if image.ndim == 3 and image.shape[2] == 4 and suffix in (".jpg", ".jpeg", ".bmp"):
        image = image[:, :, :3]
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if suffix in (".jpg", ".jpeg") else []
    if suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, JPEG_QUALITY]
    ok, buf = cv2.imencode(suffix, image, params)
    if not ok:
        raise ImageError(f"cannot encode an image as {suffix}")
    return buf.tobytes()


def write_atomic(path: Path, data: bytes, overwrite: bool = False) -> None:
    """Write bytes to a temp file beside `path`, fsync, then publish it atomically (see `atomic.publish`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "xb") as f:  # x: never an existing file
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            publish(tmp, path, overwrite)
        except OutputExists as e:
            raise ImageError(str(e)) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_image(path: Path, image: np.ndarray, overwrite: bool = False) -> None:
    write_atomic(path, encode_image(image, path.suffix), overwrite)


def comparison_sheet(before: np.ndarray, after: np.ndarray, max_height: int = 1200, gap: int = 8) -> np.ndarray:
    """before | after side by side (RGB uint8), scaled down to max_height so sheets of big scans stay small."""
    before = to_rgb8(before)
    after = to_rgb8(after)
    h, w = after.shape[:2]
    if h > max_height:
        size = (max(1, round(w * max_height / h)), max_height)
        before, after = (cv2.resize(x, size, interpolation=cv2.INTER_AREA) for x in (before, after))
    spacer = np.full((after.shape[0], gap, 3), 255, np.uint8)
    return np.hstack([before, spacer, after])


def to_rgb8(image: np.ndarray) -> np.ndarray:
    image = to_8bit(image)
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return image[:, :, :3]
