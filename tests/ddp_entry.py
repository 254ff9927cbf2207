"""torchrun entry point for tests/test_ddp.py: the `recolor` CLI with an audit hook on every rank that records
each file write, rename, link, removal or mkdir under RECOLOR_AUDIT_RUN, so the test can prove which ranks wrote.
Each rank dumps its record to RECOLOR_AUDIT_DIR/rank<N>.json when it exits."""
import json
import os
import sys

RUN = os.path.realpath(os.environ["RECOLOR_AUDIT_RUN"])
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND
writes: list[list[str]] = []


def in_run(path) -> bool:
    return isinstance(path, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(path)).startswith(RUN)


def hook(event: str, args: tuple) -> None:
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else bool((flags or 0) & WRITE_FLAGS)
        if writing and in_run(path):
            writes.append([event, os.fsdecode(path)])
    elif event in ("os.rename", "os.link"):  # os.replace raises os.rename too
        writes.extend([event, os.fsdecode(p)] for p in args[:2] if in_run(p))
    elif event in ("os.remove", "os.mkdir", "os.rmdir") and in_run(args[0]):
        writes.append([event, os.fsdecode(args[0])])


sys.addaudithook(hook)
try:
    from recolor.cli import app
    app(prog_name="recolor")
finally:
    record = os.path.join(os.environ["RECOLOR_AUDIT_DIR"], f"rank{os.environ.get('RANK', '0')}.json")
    with open(record, "w") as f:
        json.dump(writes, f)
