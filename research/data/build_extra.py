"""Build the extra training photos (issue 29) from stored snapshots of public GitHub repositories.

Every photo comes from a git blob at a pinned commit, so the set can be rebuilt byte-for-byte from the
manifest and the snapshots alone. Normalization follows ../shared/data/PROVENANCE.md (data v2 train):
EXIF orientation, RGB with alpha flattened on white, shorter side at most 256 px (Lanczos), JPEG quality 85.
Rejected: LFS pointers, undecodable files, short side < 128 px (before resizing), colourfulness < 6, and
near-duplicates (512-bit perceptual hash, Hamming distance <= 40) of the scoring sets (val, val_ood, bw),
of train, or of a photo already kept.

    python research/data/build_extra.py sheet PREFIX                 # contact sheet of 48 candidates
    python research/data/build_extra.py collect PREFIX [PREFIX ...]  # pick, write photos, append manifest
    python research/data/build_extra.py rebuild                      # rewrite every manifest photo
"""
from __future__ import annotations

import argparse
import csv
import io
import random
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from recolor.metrics import colourfulness  # noqa: E402  (the project's Hasler-Süsstrunk M)

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "extra_manifest.csv"
FIELDS = ["file", "repo", "commit", "path", "blob", "licence"]
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SHORT_MIN, SHORT_MAX, QUALITY, GRAY_MAX, HASH_DIST = 128, 256, 85, 6.0, 40
SEED = 29


# ---------------------------------------------------------------------------------------------- sources
def in_folders(*folders: str) -> Callable[[str], bool]:
    return lambda p: p.lower().endswith(IMAGE_EXT) and p.startswith(folders)


# Caltech-101 classes that are animals or outdoor scenes. Left out: objects shot on white or plain backgrounds,
# drawings (garfield, snoopy), toys, BACKGROUND_Google (clutter), Faces_easy (copies of Faces), and classes whose
# contact sheet showed clip art or sculptures (strawberry, pizza, lobster, rooster, cougar_face, rhino).
CALTECH_KEEP = """Leopards beaver butterfly cougar_body crab crayfish crocodile crocodile_head dalmatian dolphin
dragonfly elephant emu flamingo flamingo_head gerenuk hawksbill hedgehog ibis kangaroo llama okapi panda pigeon
platypus sea_horse starfish wild_cat airplanes ferry ketch schooner helicopter joshua_tree minaret pagoda
pyramid bonsai lotus sunflower water_lilly Faces""".split()


def caltech(p: str) -> bool:
    parts = p.split("/")
    return len(parts) == 3 and parts[0] == "101_ObjectCategories" and parts[1] in CALTECH_KEEP \
        and p.lower().endswith(IMAGE_EXT)


@dataclass(frozen=True)
class Source:
    prefix: str          # file-name prefix; the trainer keys per-source weights on it (no "_")
    repo: str            # owner/name
    commit: str
    select: Callable[[str], bool]
    licence: str
    cap: int = 0         # most photos kept (0: no cap); candidates are taken in a seeded random order
    per_group: int = 0   # most candidates per group (parent folder, or the CSV group for fairface)
    crop_caption: bool = False  # cut stock-photo credit bars off the bottom
    no_plain: bool = False      # reject plain-ground cut-outs and rotated-fill images


SOURCES = {s.prefix: s for s in [
    Source("har", "umareddy123/Human_activity_recognition", "520a0158744420e06448c3dcb285f8ed9e7e5030",
           in_folders("train/", "test/"), "none stated", crop_caption=True),
    # JPEGImages/001511-001569 are GRAZ-01 photos, the source of val_ood's grazpeople_: left out
    Source("pedestrian", "LS-chen/Pedestrian-behavior-detection-and-prediction",
           "26cfc4cd4ddf0de0f55cabcde39f2d9dd0571a13",
           lambda p: in_folders("JPEGImages/")(p) and int(p[11:17]) <= 1510, "none stated"),
    Source("catdog", "chanakya2734/Image-classification-using-CNN", "bf746c6e53f1edacd97b383de350f7a495cef0e1",
           in_folders("dataset/"), "none stated", cap=4000),
    Source("caltech", "toyo97/Homework2-Caltech101", "9bf96cf5f5a462d3b6a66dd135fd78c2a7c0667b",
           caltech, "none stated", cap=2500, per_group=120, no_plain=True),
    Source("fairface", "sumanvithaeadala/EthnicityDetection", "9b001ff28a8a2e7840bcf1c01c8efb97d22471e8",
           in_folders("fair_face/"), "none stated", cap=3000, per_group=600),
    # Intel Image Classification: only the town classes (the nature ones are already intelscene_ in train)
    Source("inteltown", "Blaqadonis/outdoor_image_classification", "a363771429fed9e5344627c54c55c21f43d7f816",
           in_folders("seg_train/seg_train/buildings/", "seg_train/seg_train/street/",
                      "seg_test/seg_test/buildings/", "seg_test/seg_test/street/"),
           "none stated", cap=2400, per_group=1200),
    # Its forest class as well: people-f painted val_ood's forests blue (notebook step 31); 150 px photos
    Source("intelforest", "Blaqadonis/outdoor_image_classification", "a363771429fed9e5344627c54c55c21f43d7f816",
           in_folders("seg_train/seg_train/forest/", "seg_test/seg_test/forest/"), "none stated"),
    # Food-101 subset (10 dishes); 293 of its photos are already foodmnist_ in train (the hash dedupe drops them)
    Source("food101", "srohit0/food_mnist", "e6cdf589a9937cf7fcb53d3a86df053be452e1f5", in_folders("images/"),
           "Food-101 terms (license_agreement.txt): scientific fair use; photos belong to their owners",
           cap=3000, per_group=300),
    # Kaggle "100 Sports" at 224 px (a history commit; HEAD dropped the data); 470 are sportspeople_ in train
    Source("sports100", "alexchagan/sports-images-classifier", "2ee468e31346b32cd6762d2d2c323f7804661e02",
           in_folders("sports-classifier-data/"), "none stated", cap=4000, per_group=45),
    # CCTV frames with people (folder 1; folder 0 has no people)
    Source("cctv", "Mouso00/Human-Detection-Dataset-", "56be9d6ec70f0a650006c2d0b330a78c66fedc97",
           in_folders("human detection dataset/1/"), "none stated"),
    Source("horse", "shenshutao/image_segmentation", "2653401d6ea617026895aac17059eb57e017abcb",
           in_folders("weizmann_horse_db/rgb/"), "none stated (Weizmann Horse Database, research use)"),
]}


# ---------------------------------------------------------------------------------------------- git access
def git_dir(mirror: Path, repo: str) -> Path:
    base = mirror / repo.replace("/", "+") / "repo"
    return base / ".git" if (base / ".git").is_dir() else base


def list_blobs(gdir: Path, commit: str) -> list[tuple[str, str]]:
    """(path, blob sha) of every file at the commit."""
    out = subprocess.run(["git", "--git-dir", str(gdir), "ls-tree", "-r", "-z", commit],
                         check=True, capture_output=True).stdout.decode()
    rows = [line.split("\t", 1) for line in out.split("\0") if line]
    return [(path, meta.split()[2]) for meta, path in rows if meta.split()[1] == "blob"]


def read_blobs(gdir: Path, shas: list[str]) -> Iterator[tuple[str, bytes | None]]:
    """Stream blob contents through one `git cat-file --batch`; None for a blob the snapshot lacks."""
    proc = subprocess.Popen(["git", "--git-dir", str(gdir), "cat-file", "--batch"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    for sha in shas:
        proc.stdin.write(sha.encode() + b"\n")
        proc.stdin.flush()
        header = proc.stdout.readline().split()
        if header[-1] == b"missing":
            yield sha, None
            continue
        data = proc.stdout.read(int(header[2]))
        proc.stdout.read(1)  # trailing newline
        yield sha, data
    proc.stdin.close()
    proc.wait()


def show(gdir: Path, commit: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(gdir), "show", f"{commit}:{path}"],
                          check=True, capture_output=True).stdout.decode()


# ---------------------------------------------------------------------------------------------- images
def caption_rows(rgb: np.ndarray) -> int:
    """Height of a plain bar at the bottom (stock-photo credit lines such as "shutterstock - 123"), 0 if none.

    A row is plain when >= 55% of it is within 16 levels of the bottom row's colour; the bar is the longest
    run from the bottom, within the bottom 20%, that is >= 75% plain rows (the text rows break pure runs).
    """
    a = rgb.astype(np.int16)
    ref = np.median(a[-2:].reshape(-1, 3), axis=0)
    band = a[int(len(a) * 0.8):][::-1]  # (H/5, W, 3), bottom row first
    plain = (np.abs(band - ref).max(axis=2) <= 16).mean(axis=1) >= 0.55
    share = np.cumsum(plain) / np.arange(1, len(plain) + 1)
    ok = np.nonzero(plain & (share >= 0.75))[0]
    return int(ok[-1]) + 3 if len(ok) and plain[0] else 0  # +3: the bar's edge


def plain_corners(rgb: np.ndarray) -> bool:
    """True when 3+ corners are flat black or white: an object cut out on a plain ground, or a rotated scan
    on black fill (both common in Caltech-101)."""
    flat = 0
    for patch in (rgb[:6, :6], rgb[:6, -6:], rgb[-6:, :6], rgb[-6:, -6:]):
        p = patch.astype(np.float32)
        flat += p.std() < 3 and (p.mean() < 20 or p.mean() > 235)
    return flat >= 3


def normalize(data: bytes | None, crop_caption: bool = False, no_plain: bool = False
              ) -> tuple[np.ndarray | None, str]:
    """Decoded, oriented, resized RGB uint8, or None and the reason it was rejected."""
    if data is None:
        return None, "missing blob"
    if data.startswith(b"version https://git-lfs"):
        return None, "lfs pointer"
    try:
        img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
        img.load()
    except Exception:  # noqa: BLE001  (any decoder failure means the same thing: unusable file)
        return None, "undecodable"
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.new("RGB", rgba.size, "white")
        img.paste(rgba, mask=rgba.getchannel("A"))
    img = img.convert("RGB")
    if crop_caption and (k := caption_rows(np.asarray(img))):
        img = img.crop((0, 0, img.width, img.height - k))
    short = min(img.size)
    if short < SHORT_MIN:
        return None, "short side < 128"
    if short > SHORT_MAX:
        scale = SHORT_MAX / short
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.LANCZOS)
    rgb = np.asarray(img)
    if colourfulness(rgb) < GRAY_MAX:
        return None, "near-gray"
    if no_plain and plain_corners(rgb):
        return None, "plain or rotated-fill corners"
    return rgb, "ok"


def encode(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=QUALITY)
    return buf.getvalue()


def phash(rgb: np.ndarray) -> np.ndarray:
    """512-bit hash: 16x16 mean hash + 17x16 difference hash of the gray image, packed to 64 bytes."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    small = cv2.resize(gray, (16, 16), interpolation=cv2.INTER_AREA)
    wide = cv2.resize(gray, (17, 16), interpolation=cv2.INTER_AREA)
    bits = np.concatenate([(small > small.mean()).ravel(), (wide[:, 1:] > wide[:, :-1]).ravel()])
    return np.packbits(bits)


class HashIndex:
    """Packed hashes as (N, 8) uint64, compared with a vectorised popcount."""

    def __init__(self) -> None:
        self.words = np.zeros((0, 8), np.uint64)
        self.labels: list[str] = []
        self._pending: list[np.ndarray] = []

    def add(self, h: np.ndarray, label: str) -> None:
        self._pending.append(h.view(np.uint64))
        self.labels.append(label)
        if len(self._pending) >= 256:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.words = np.vstack([self.words, np.stack(self._pending)])
            self._pending = []

    def match(self, h: np.ndarray) -> str | None:
        """Label of the first indexed photo within HASH_DIST (index order: scoring sets first), or None."""
        self._flush()
        if not len(self.words):
            return None
        close = np.bitwise_count(self.words ^ h.view(np.uint64)).sum(axis=1) <= HASH_DIST
        return self.labels[int(close.argmax())] if close.any() else None


def index_folders(folders: list[Path]) -> HashIndex:
    index = HashIndex()
    for folder in folders:
        for f in sorted(folder.iterdir()):
            rgb = cv2.imread(str(f), cv2.IMREAD_COLOR)
            if rgb is not None:
                index.add(phash(rgb[..., ::-1]), f"{folder.name}/{f.name}")
    return index


# ---------------------------------------------------------------------------------------------- selection
def fairface_groups(gdir: Path, commit: str) -> dict[str, str]:
    """Repo path -> FairFace race label, from the repo's label CSVs."""
    groups = {}
    for name in ("fairface_label_train.csv", "fairface_label_val.csv"):
        for row in csv.DictReader(io.StringIO(show(gdir, commit, name))):
            groups["fair_face/" + row["file"]] = row["race"]
    return groups


def candidates(src: Source, gdir: Path) -> list[tuple[str, str]]:
    """(path, blob) in the order they are tried: unique blobs, seeded shuffle, round-robin over groups."""
    seen, rows = set(), []
    for path, sha in sorted(list_blobs(gdir, src.commit)):
        if src.select(path) and sha not in seen:  # exact duplicate files are dropped here
            seen.add(sha)
            rows.append((path, sha))
    if not src.cap:
        return rows
    random.Random(SEED).shuffle(rows)
    if not src.per_group:
        return rows
    label = fairface_groups(gdir, src.commit).get if src.prefix == "fairface" else lambda p: p.split("/")[-2]
    by_group: dict[str, list] = {}
    for row in rows:
        g = label(row[0])
        if g is not None:
            by_group.setdefault(g, []).append(row)
    groups = [g[:src.per_group] for g in by_group.values()]
    # interleave so that a cap cuts every group evenly
    return [g[i] for i in range(max(map(len, groups))) for g in groups if i < len(g)]


# ---------------------------------------------------------------------------------------------- commands
SCORING = ("val", "val_ood", "bw")  # photos that score models: none may leak into training


def take(rows, gdir, index, out: Path, src: Source, stats: Counter) -> list[tuple[str, str, str]]:
    """Normalize, filter and dedupe rows; write the kept photos. Returns (file, path, blob) kept."""
    kept, by_sha = [], {sha: path for path, sha in rows}
    for sha, data in read_blobs(gdir, list(by_sha)):
        if src.cap and len(kept) >= src.cap:
            break
        rgb, why = normalize(data, src.crop_caption, src.no_plain)
        if rgb is None:
            stats[why] += 1
            continue
        h = phash(rgb)
        label = index.match(h)
        if label:
            stats["dup " + label.split("/")[0]] += 1
            continue
        name = f"{src.prefix}_{len(kept):05d}.jpg"
        (out / name).write_bytes(encode(rgb))
        index.add(h, f"new/{name}")
        kept.append((name, by_sha[sha], sha))
    return kept


def existing_rows() -> list[dict]:
    if not MANIFEST.exists():
        return []
    with MANIFEST.open() as f:
        return list(csv.DictReader(f))


def write_ready(out: Path) -> None:
    """Per-prefix counts of finished sources: only manifest rows count, never a source still being written."""
    counts = Counter(r["file"].split("_")[0] for r in existing_rows() if (out / r["file"]).exists())
    lines = [f"{p} {n}" for p, n in sorted(counts.items())] + [f"total {sum(counts.values())}"]
    (out / "READY").write_text("\n".join(lines) + "\n")


def collect(args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    index = index_folders([args.shared / d for d in SCORING + ("train",)])
    old = existing_rows()
    for row in old:  # photos kept by earlier runs count as already taken
        rgb = cv2.imread(str(args.out / row["file"]), cv2.IMREAD_COLOR)
        if rgb is not None:
            index.add(phash(rgb[..., ::-1]), "new/" + row["file"])
    for prefix in args.prefixes:
        src = SOURCES[prefix]
        if any(r["file"].startswith(prefix + "_") for r in old):
            print(f"{prefix}: already in the manifest, skipped")
            continue
        gdir = git_dir(args.mirror, src.repo)
        stats = Counter()
        kept = take(candidates(src, gdir), gdir, index, args.out, src, stats)
        new_file = not MANIFEST.exists()
        with MANIFEST.open("a", newline="") as f:
            w = csv.writer(f)
            if new_file:
                w.writerow(FIELDS)
            w.writerows([name, src.repo, src.commit, path, sha, src.licence] for name, path, sha in kept)
        print(f"{prefix}: kept {len(kept)}; rejected {dict(stats)}", flush=True)
    if args.ready:  # only once every source asked for is written, so the trainer never sees half a batch
        write_ready(args.out)


def rebuild(args) -> None:
    """Rewrite every manifest photo from its blob, still refusing anything close to the scoring sets."""
    args.out.mkdir(parents=True, exist_ok=True)
    index = index_folders([args.shared / d for d in SCORING])
    by_prefix: dict[str, list[dict]] = {}
    for row in existing_rows():
        by_prefix.setdefault(row["file"].split("_")[0], []).append(row)
    for prefix, rows in by_prefix.items():
        src, stats = SOURCES[prefix], Counter()
        gdir = git_dir(args.mirror, src.repo)
        by_sha = {r["blob"]: r for r in rows}
        for sha, data in read_blobs(gdir, list(by_sha)):
            rgb, why = normalize(data, src.crop_caption, src.no_plain)
            if rgb is None or index.match(phash(rgb)):
                stats[why if rgb is None else "near a scoring photo"] += 1
                continue
            (args.out / by_sha[sha]["file"]).write_bytes(encode(rgb))
            stats["written"] += 1
        print(prefix, dict(stats), flush=True)
    write_ready(args.out)


def sheet(args) -> None:
    """8x6 contact sheet of 48 random candidates after normalization, for checking a source by eye."""
    src = SOURCES[args.prefixes[0]]
    gdir = git_dir(args.mirror, src.repo)
    rows = candidates(src, gdir)
    rows = random.Random(args.seed).sample(rows, min(len(rows) , 48))
    tiles = []
    for _, data in read_blobs(gdir, [sha for _, sha in rows]):
        rgb, _ = normalize(data, src.crop_caption, src.no_plain)
        tile = np.full((160, 160, 3), 255, np.uint8)
        if rgb is not None:
            s = 160 / max(rgb.shape[:2])
            small = cv2.resize(rgb, (int(rgb.shape[1] * s), int(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)
            tile[:small.shape[0], :small.shape[1]] = small
        tiles.append(tile)
    tiles += [np.full((160, 160, 3), 255, np.uint8)] * (48 - len(tiles))
    grid = np.vstack([np.hstack(tiles[r * 8:(r + 1) * 8]) for r in range(6)])
    Path("/tmp/sheets").mkdir(exist_ok=True)
    Image.fromarray(grid).save(f"/tmp/sheets/{src.prefix}{args.seed}.png")  # the viewer shows PNG only


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["collect", "rebuild", "sheet"])
    ap.add_argument("prefixes", nargs="*", default=list(SOURCES))
    ap.add_argument("--mirror", type=Path, default=Path("/work/.mirror"))
    ap.add_argument("--shared", type=Path, default=Path("/work/shared/data"))
    ap.add_argument("--out", type=Path, default=Path("/root/recolor-data/extra"))
    ap.add_argument("--ready", action="store_true", help="collect: rewrite OUT/READY at the end")
    ap.add_argument("--seed", type=int, default=0, help="sheet: which random sample")
    args = ap.parse_args()
    {"collect": collect, "rebuild": rebuild, "sheet": sheet}[args.command](args)


if __name__ == "__main__":
    main()
