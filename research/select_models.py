"""Choose among models and decoding settings without rewarding gray (issue 29): read `recolor eval --json`
files of one photo set and rank them by a score that counts colour as well as ΔE.

    python research/select_models.py runs/eval/*.json [--only FOLDER]   (FOLDER: score only the photos named there)

score = ΔE2000 + 5 × washed-out rate + 5 × max(0, 0.70 − colourfulness share) + 5 × people's washed-out rate

- ΔE2000: mean over photos (lower is better); alone it rewards gray where the model is unsure.
- washed-out rate: share of photos whose colourfulness is under 0.4 of their truth's (recolor.evaluate).
- colourfulness share: the model's mean colourfulness over the truth's; 0.70 is the issue's floor.
- people's washed-out rate: the same rate on the sources that are people in whole scenes (PEOPLE), counted a
  second time because gray skin is what users notice first.
A weight of 5 makes 10 points of washed-out rate cost as much as 0.5 ΔE, about v14c's gap to gray on val_ood.
Per-image rows are read, so JSON files written before `washed_out` existed are scored the same way.
"""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

WASHED_OUT = 0.4
COLOUR_FLOOR = 0.70
WEIGHT = 5.0
PEOPLE = ("shtcrowd", "grazpeople")  # val_ood's sources of people in whole scenes


def washed(row: dict) -> float:
    return float(row["model_colourfulness"] < WASHED_OUT * row["truth_colourfulness"])


def scores(report: dict, only: set[str] | None = None) -> dict:
    rows = [r for r in report["images"] if only is None or r["name"] in only]
    mean = lambda key, rs=rows: sum(r[key] for r in rs) / len(rs)
    by_source = defaultdict(list)
    for r in rows:
        by_source[r["source"]].append(r)
    people = [r for s in PEOPLE for r in by_source.get(s, [])]
    out = {"photos": len(rows), "delta_e": mean("model_delta_e"),
           "colour_share": mean("model_colourfulness") / mean("truth_colourfulness"),
           "washed_out": sum(map(washed, rows)) / len(rows),
           "people_washed_out": sum(map(washed, people)) / len(people) if people else 0.0,
           "per_source": {s: (mean("model_delta_e", rs), sum(map(washed, rs)) / len(rs))
                          for s, rs in sorted(by_source.items())}}
    out["score"] = (out["delta_e"] + WEIGHT * out["washed_out"]
                    + WEIGHT * max(0.0, COLOUR_FLOOR - out["colour_share"]) + WEIGHT * out["people_washed_out"])
    return out


def main(paths: list[str]) -> None:
    only = None
    if "--only" in paths:
        i = paths.index("--only")
        only, paths = {f.name for f in Path(paths[i + 1]).iterdir()}, paths[:i] + paths[i + 2:]
    results = sorted(((scores(json.loads(Path(p).read_text()), only), Path(p).stem) for p in paths),
                     key=lambda t: t[0]["score"])
    sources = list(results[0][0]["per_source"]) if results else []
    print("| model | score ↓ | ΔE2000 | colour share | washed out | people washed out | "
          + " | ".join(f"{s} ΔE / washed" for s in sources) + " |")
    print("|---" * (6 + len(sources)) + "|")
    for s, name in results:
        cells = [f"{s['per_source'][src][0]:.2f} / {100 * s['per_source'][src][1]:.0f}%" if src in s["per_source"]
                 else "-" for src in sources]
        print(f"| {name} | {s['score']:.3f} | {s['delta_e']:.3f} | {100 * s['colour_share']:.0f}% | "
              f"{100 * s['washed_out']:.0f}% | {100 * s['people_washed_out']:.0f}% | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
