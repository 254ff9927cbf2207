"""torchrun entry point for tests/test_ddp.py: the `recolor` CLI with an audit hook on every rank that records
each file write, rename, link, removal or mkdir under RECOLOR_AUDIT_RUN, so the test can prove which ranks wrote.
Each rank dumps its record to RECOLOR_AUDIT_DIR/rank<N>.json when it exits. RECOLOR_FAIL_RANK1_AT=N makes rank 1
alone fail at pretraining step N."""
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


def fail_on_rank1(step: int) -> None:
    """Make rank 1 alone raise a TrainingError just before pretraining step `step`, while rank 0 goes on into
    that step's collectives (as when one GPU runs out of memory or one rank's data fails)."""
    from recolor.training import TrainingError
    from recolor.training.steps import STAGE_STEP
    real = STAGE_STEP["pretrain"]

    def pretrain(self, *batch):
        if self.state.step + 1 == step:
            raise TrainingError(f"injected failure on rank 1 at step {step}")
        return real(self, *batch)

    STAGE_STEP["pretrain"] = pretrain


sys.addaudithook(hook)
if os.environ.get("RECOLOR_FAIL_RANK1_AT") and os.environ.get("RANK") == "1":
    fail_on_rank1(int(os.environ["RECOLOR_FAIL_RANK1_AT"]))
try:
    from recolor.cli import app
    app(prog_name="recolor")
finally:
    record = os.path.join(os.environ["RECOLOR_AUDIT_DIR"], f"rank{os.environ.get('RANK', '0')}.json")
    with open(record, "w") as f:
        json.dump(writes, f)
