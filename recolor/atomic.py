"""Publishing finished outputs atomically: a complete temp file is moved into place in one step."""
from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def new_file_mode() -> int:
    """The mode open() gives a new file (0o666 less the umask). mkstemp and safetensors create temp files 0600;
    a published output gets this instead. Read, not set: os.umask() would change it for the whole process
    for a moment, which a library must not do to its caller (and other threads)."""
    try:
        with open("/proc/self/status") as f:  # Linux 4.7+
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    with tempfile.TemporaryDirectory() as folder:  # elsewhere: create a file and look at what it got
        probe = Path(folder) / "probe"
        os.close(os.open(probe, os.O_CREAT | os.O_WRONLY, 0o666))
        return probe.stat().st_mode & 0o777


def temp_path(dest: Path) -> Path:
    """recolor's one temp-file name: hidden, beside dest (so the final rename stays on one file system and is
    atomic), unique per call (threads and processes may write the same output), and ending in dest's suffix
    (FFmpeg and the image encoders pick the format by it): `.photo.1a2b3c4d.part.jpg`."""
    return dest.with_name(f".{dest.stem}.{uuid.uuid4().hex[:8]}.part{dest.suffix}")


class OutputExists(FileExistsError):
    """The output name is taken and overwriting was not asked for."""

    def __init__(self, path: Path):
        super().__init__(f"{path}: exists (use --overwrite to replace it)")


def publish(tmp: Path | str, dest: Path, overwrite: bool) -> None:
    """Move a finished temp file (same folder) to dest. Without overwrite, a hard link publishes it and fails
    if the name exists, so even a file that appeared meanwhile is never clobbered."""
    os.chmod(tmp, new_file_mode())
    if overwrite:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise OutputExists(dest) from None
    except OSError:  # file systems without hard links
        if dest.exists():
            raise OutputExists(dest) from None
        os.replace(tmp, dest)
        return
    os.unlink(tmp)


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temp path beside `path` to write to: it replaces `path` when the block ends well and is removed when it
    fails, so a reader only ever sees the old file or the complete new one (and no stray temp files)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.chmod(tmp, new_file_mode())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
