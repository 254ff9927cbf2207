"""Reading the fields of a multipart form, each with a one-line 400 when it is wrong.

File names sent by a browser are only ever shown back to the user (in messages and download names): no path
from a request reaches the file system; the server names its own temp files."""
from __future__ import annotations

from pathlib import PurePosixPath

from starlette.datastructures import FormData, UploadFile

from .errors import ApiError

NAME_CHARS = 100  # a display name is cut to this many characters


def display_name(filename: str | None, fallback: str) -> str:
    """A browser's file name -> its last part, printable characters only: for messages and downloads."""
    name = PurePosixPath((filename or "").replace("\\", "/")).name
    name = "".join(c for c in name if c.isprintable())[:NAME_CHARS].strip()
    return name or fallback


def form_file(form: FormData, name: str, required: bool = True) -> UploadFile | None:
    part = form.get(name)
    if isinstance(part, UploadFile):
        return part
    if part is not None and part != "":
        raise ApiError(400, f'"{name}" must be a file part (multipart/form-data with a filename)')
    if required:
        raise ApiError(400, f'no file: send it as the multipart part "{name}"')
    return None


def form_text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if isinstance(value, UploadFile):
        raise ApiError(400, f'"{name}" must be a text field, not a file')
    if value is None:
        return None
    return value.strip() or None


def form_int(form: FormData, name: str, default: int, low: int, high: int) -> int:
    text = form_text(form, name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f'"{name}" must be a whole number from {low} to {high}, not {text[:20]!r}') from None
    if not low <= value <= high:
        raise ApiError(400, f'"{name}" {value} is out of range: use {low}–{high}')
    return value


def form_choice(form: FormData, name: str, default: str, choices) -> str:
    value = form_text(form, name) or default
    if value not in choices:
        raise ApiError(400, f'unknown "{name}" {value[:40]!r}: use one of {", ".join(choices)}')
    return value
