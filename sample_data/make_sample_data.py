#!/usr/bin/env python3
"""Build the bundled two-class sample dataset ("animals" vs "vehicles").

The images come from the public-domain clip art of the Open Clip Art Library
as packaged by Debian (``apt-get install openclipart-png``; the PNGs land in
``/usr/share/openclipart/png``).  The script

1. collects candidate PNGs per class from fixed source folders (see
   ``CLASSES`` below), in sorted order;
2. drops exact duplicates (the package holds the same file in several
   folders; the first path in sorted order wins), files in a short, explicit
   exclusion list (road signs, sailing diagrams and knots that sit in the
   transportation folders; logos, text-heavy cartoons and broken placeholder
   images among the animals), and any drawing listed under both classes;
3. renders each file: RGBA (or palette/greyscale) is composited onto white,
   cropped to the drawing's bounding box (plus a small margin), resized so the
   long side is at most ``--size`` px (aspect ratio kept) and converted to RGB.
   Files over ``--max-megapixels`` are skipped with a note (the package has
   a few of 100-600 MP), and a decode error skips that file only;
4. rejects renders that are not a clear picture: less than ``--min-ink`` of
   the area non-white, mostly a single colour (silhouettes, one-colour line
   art), a very elongated aspect ratio, or pixel-identical to one already
   kept;
5. groups near-variants: by a normalised stem (``bus1_bw_x_01`` /
   ``bus1_x_01``, ``aircraft_x1`` / ``aircraft_x2``, ``..._green_..`` /
   ``..._pink_..``) and by look (difference hash of the render), then
   shuffles the groups with a fixed seed (stratified by source sub-folder,
   e.g. birds / bugs / fish / mammals) and fills the validation split
   first, then the train split, so no group is ever split between train and
   validation; at most ``--max-per-group`` images of one group are used
   unless train needs more to reach its count;
6. by default cuts every class to the size the smallest class allows, so the
   classes stay balanced;
7. clears ``<out>/train/<class>`` and ``<out>/validation/<class>`` and writes
   the chosen images there as JPEG, named after the sanitised source basename,
   plus ``<out>/manifest.csv`` mapping every output file to its source path.
   Nothing else in ``<out>`` (this script, README.md) is touched.

The same source, arguments and seed always give the same files.  Only
Pillow and the standard library are needed.

Regenerate the bundled set (from the repository root)::

    apt-get install -y --no-install-recommends openclipart-png
    python sample_data/make_sample_data.py
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import re
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops

DEFAULT_SOURCE = Path("/usr/share/openclipart/png")
DEFAULT_OUT = Path(__file__).resolve().parent
SPLITS = ("train", "validation")

# Source folders per class, relative to the source dir.  (folder, recursive)
CLASSES: dict[str, dict] = {
    "animals": {
        "folders": [
            ("animals/amphibian", True),
            ("animals/birds", True),
            ("animals/bugs", True),
            ("animals/dinosaurs", True),
            ("animals/fish", True),
            ("animals/mammals", True),
        ],
        "extra_files": [],
        # Not a clear animal picture: text-heavy cartoons, logos, broken
        # "Linked Image Not Found" placeholders, objects, faint outlines.
        "exclude_stems": {
            "2_dead_frogs_lumen_desig_01",
            "baby-tux_alex_kuehne_01",
            "baby_tux_rory_mccann_01",
            "cat_scrathing_post_benji_01",
            "dolphin_01",
            "duck_yellow_ii_kurt_cagl_",
            "elephant_outline_matthe_r",
            "kallisti-grenade_1_nurbl_01",
            "mechorse",
            "mhooo_peterm_",
            "mirjam_meijer_mirjam_mei_01",
            "ninja_tux_rory_mccann_01",
            "shaezy_peterm_",
            "skoynk_peterm_",
            "squeek_peterm_",
            "stormo_di_uccelli_archit_01",
            "turkey_on_platter_01",
            "tux_didier_fabert_01",
            "virus_andreas_nilsson_01",
            "wing_mitchell_johnson_si_",
        },
        "exclude_patterns": [],
    },
    "vehicles": {
        "folders": [("transportation", False), ("transportation/vehicles", True), ("transportation/boating", False)],
        # Vehicles that live in other folders of the package.
        "extra_files": [
            "people/fire_engine_mimooh_01.png",
            "recreation/toys/kiddy_train_orlando_kara_.png",
            "unsorted/Montacarichi.png",
            "unsorted/ambulanza.png",
            "unsorted/betoniera.png",
            "unsorted/caterpillar.png",
        ],
        # Things in the transportation folders that are not vehicles:
        # road signs, traffic lights, anchors, buildings, props; and faint
        # blueprints / a wing logo that do not read as a vehicle.
        "exclude_stems": {
            "departing_plane_01",
            "shelby_cobra_blueprint_i_01",
            "shelby_cobra_car_bluepr_",
            "soviet_shuttle_mo_01",
            "wing_mitchell_johnson_si_",
            "Evel_Knievel",
            "Motorway_on",
            "airplane",
            "ampelfrau_matthew_gates_01",
            "ampelmaennchen_matthew_g_01",
            "anchor",
            "anchor_juliane_krug_01",
            "bambi",
            "bus_lane",
            "bus_opposite",
            "buses_and_bikes",
            "cattle",
            "crossroads",
            "crosswind",
            "curve_ahead",
            "cycle_lane",
            "cycle_route",
            "cycles",
            "drawbridge",
            "end_daul",
            "grain_elevator_ganson",
            "grounded",
            "horse",
            "kaboom",
            "lighthouse_01",
            "lighthouse_matthew_gates_",
            "little_tan_suitcase_jona_",
            "lorry_length",
            "no_cycles",
            "no_entry",
            "old_folks",
            "parking_romus_01",
            "pass_either",
            "quay_sign_01",
            "roundabout",
            "street_sign_gerald_g._01",
            "tram",
            "trams_only",
            "tunnel",
            "turn_ahead",
            "two_way_ahead",
            "two_way_crosses",
            "zigzag",
        },
        # Sailing / boating diagrams and knots.
        "exclude_patterns": [
            r"^boating_rules",
            r"^knot_",
            r"^sailboat_illustration_labels$",
            r"^sailing_(capsize|close_hauled|heel|jibe|points|reaching|"
            r"running_free|tack)",
        ],
    },
}


@dataclass
class Candidate:
    cls: str
    path: Path  # absolute source path
    rel: str  # path relative to the source dir
    stem: str  # source basename without extension
    group: str  # near-duplicate group key
    image: Image.Image | None = None


def sanitize(stem: str) -> str:
    """ASCII-only file stem: letters, digits, '_' and '-'."""
    s = stem.encode("ascii", "ignore").decode("ascii")
    s = re.sub(r"[^A-Za-z0-9_-]+", "_", s).strip("_-")
    return s or "image"


def group_key(stem: str) -> str:
    """Normalised stem that puts near-variants of one drawing together.

    Drops a ``_bw`` (black and white) or colour-name marker and trailing
    digits/underscores/a trailing ``_r``, so ``bus1_bw_jarno_vasamaa_01`` and
    ``bus1_jarno_vasamaa_01`` or ``aircraft_jarno_vasamaa1`` and
    ``aircraft_jarno_vasamaa_`` share a key.
    """
    s = stem.lower()
    s = re.sub(r"_(bw|black|blue|green|pink|red|white|yellow)(?=_|$)", "", s)
    s = re.sub(r"_r$", "", s)
    s = re.sub(r"[_\d.]+$", "", s)
    return s or stem.lower()


def dhash(im: Image.Image, n: int = 16) -> int:
    """Difference hash of a render (padded square on white), n*n bits."""
    g = im.convert("L")
    side = max(g.size)
    sq = Image.new("L", (side, side), 255)
    sq.paste(g, ((side - g.width) // 2, (side - g.height) // 2))
    px = sq.resize((n + 1, n), Image.LANCZOS).tobytes()
    bits = 0
    for r in range(n):
        for c in range(n):
            bits = (bits << 1) | (px[r * (n + 1) + c] > px[r * (n + 1) + c + 1])
    return bits


def merge_similar_groups(cands: list[Candidate], max_dist: int) -> None:
    """Put candidates whose renders look alike (dhash distance <= max_dist)
    into one group, so they never end up on both sides of the split."""
    parent = {c.group: c.group for c in cands}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    hashes = [(c, dhash(c.image)) for c in cands]
    for i, (a, ha) in enumerate(hashes):
        for b, hb in hashes[i + 1 :]:
            if bin(ha ^ hb).count("1") <= max_dist:
                ra, rb = find(a.group), find(b.group)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)
    for c in cands:
        c.group = find(c.group)


def list_candidates(source: Path, cls: str, spec: dict) -> list[Candidate]:
    paths: list[Path] = []
    for folder, recursive in spec["folders"]:
        d = source / folder
        if not d.is_dir():
            print(f"  note: missing source folder {d}", file=sys.stderr)
            continue
        paths.extend(d.rglob("*.png") if recursive else d.glob("*.png"))
    for rel in spec["extra_files"]:
        p = source / rel
        if p.is_file():
            paths.append(p)
        else:
            print(f"  note: missing extra file {p}", file=sys.stderr)
    patterns = [re.compile(p) for p in spec["exclude_patterns"]]
    seen: set[str] = set()
    out = []
    for p in sorted(set(paths), key=lambda q: q.relative_to(source).as_posix()):
        stem = p.stem
        if stem in seen:  # same file in another folder
            continue
        seen.add(stem)
        if stem in spec["exclude_stems"] or any(r.search(stem) for r in patterns):
            continue
        out.append(Candidate(cls, p, p.relative_to(source).as_posix(), stem, group_key(stem)))
    return out


def render(path: Path, size: int, max_pixels: int) -> Image.Image:
    """Composite on white, crop to the drawing, resize long side to <= size."""
    with Image.open(path) as im:
        w, h = im.size
        if w * h > max_pixels:
            raise ValueError(f"{w}x{h} = {w * h / 1e6:.0f} MP is over the limit")
        im.load()
        if im.mode not in ("RGBA", "RGB"):
            im = im.convert("RGBA")
        if im.mode == "RGBA":  # drop the transparent margin at full size
            bbox = im.getchannel("A").getbbox()
            if bbox is None:
                raise ValueError("fully transparent")
            im = im.crop(bbox)
        # Work on at most 1024 px from here on (Pillow resamples RGBA with
        # premultiplied alpha, so edges do not darken).
        if max(im.size) > 1024:
            im.thumbnail((1024, 1024), Image.LANCZOS, reducing_gap=3.0)
        if im.mode == "RGBA":
            bg = Image.new("RGB", im.size, (255, 255, 255))
            bg.paste(im, mask=im.getchannel("A"))
            im = bg
        else:
            im = im.copy()
    # Crop to the non-white bounding box plus a 4 % margin.
    ink = ImageChops.invert(im.convert("L")).point(lambda v: 255 if v > 12 else 0)
    bbox = ink.getbbox()
    if bbox is None:
        raise ValueError("blank image")
    left, t, r, b = bbox
    pad = max(2, int(0.04 * max(r - left, b - t)))
    im = im.crop((max(0, left - pad), max(0, t - pad), min(im.width, r + pad), min(im.height, b + pad)))
    im.thumbnail((size, size), Image.LANCZOS)
    return im


def quality_problem(im: Image.Image, min_ink: float, max_one_colour: float, max_aspect: float) -> str | None:
    """Return why a render is not a clear picture, or None if it is fine."""
    w, h = im.size
    if max(w, h) / max(1, min(w, h)) > max_aspect:
        return f"aspect {max(w, h) / min(w, h):.1f}"
    lo = ImageChops.darker(ImageChops.darker(*im.split()[:2]), im.getchannel("B"))
    mask = lo.point(lambda v: 255 if v < 235 else 0)
    n_ink = mask.histogram()[255]
    frac = n_ink / (w * h)
    if frac < min_ink:
        return f"only {frac:.0%} non-white"
    # Dominant coarse colour (3 bits per channel) among the non-white pixels;
    # the white area is painted a sentinel colour no coarse bin can take.
    coarse = im.point(lambda v: v & 0xE0)
    sentinel = (1, 2, 3)
    coarse = Image.composite(coarse, Image.new("RGB", im.size, sentinel), mask)
    counts = [n for n, c in coarse.getcolors(w * h) if c != sentinel]
    top = max(counts) / n_ink
    if top > max_one_colour:
        return f"{top:.0%} one colour"
    return None


def choose(
    cands: list[Candidate], n_train: int, n_val: int, max_per_group: int, rng: random.Random
) -> dict[str, list[Candidate]]:
    """Group-aware deterministic split.

    Groups (near-variants, or a series by one artist) are shuffled with the
    seeded RNG, stratified by source sub-folder.  Validation is filled first, with whole groups of at most
    ``max_per_group`` members, so it is diverse and shares no group with
    train.  Train then takes up to ``max_per_group`` members of each
    remaining group; only if it is still short does it take more members of
    the groups it already holds.
    """
    groups: dict[str, list[Candidate]] = {}
    for c in cands:
        groups.setdefault(c.group, []).append(c)
    # Proportional stratification by source sub-folder (animals/birds,
    # animals/bugs, ...): shuffle each stratum, then interleave the strata
    # evenly, so every prefix of the order (and so each split) mixes them.
    strata: dict[str, list[str]] = {}
    for k in sorted(groups):
        first = min(groups[k], key=lambda c: c.rel)
        folder = first.rel.split("/")[:-1]
        strata.setdefault("/".join(folder[:2]), []).append(k)
    order = []
    for name in sorted(strata):
        ks = strata[name]
        rng.shuffle(ks)
        offset = rng.random()
        order += [((i + offset) / len(ks), name, k) for i, k in enumerate(ks)]
    keys = [k for _, _, k in sorted(order)]
    for k in keys:
        members = sorted(groups[k], key=lambda c: c.rel)
        rng.shuffle(members)
        groups[k] = members
    chosen: dict[str, list[Candidate]] = {"validation": [], "train": []}
    used: set[str] = set()
    for k in keys:
        if len(chosen["validation"]) >= n_val:
            break
        g = groups[k]
        if len(g) <= max_per_group and len(chosen["validation"]) + len(g) <= n_val:
            chosen["validation"].extend(g)
            used.add(k)
    train_keys = [k for k in keys if k not in used]
    for k in train_keys:
        room = n_train - len(chosen["train"])
        if room <= 0:
            break
        chosen["train"].extend(groups[k][: min(max_per_group, room)])
    for k in train_keys:  # top up from the groups train already holds
        room = n_train - len(chosen["train"])
        if room <= 0:
            break
        held = sum(1 for c in chosen["train"] if c.group == k)
        if held:
            chosen["train"].extend(groups[k][held : held + room])
    return chosen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="openclipart-png folder (default: %(default)s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: the folder of this script)")
    ap.add_argument("--n-train", type=int, default=45, help="train images per class (default: %(default)s)")
    ap.add_argument("--n-val", type=int, default=25, help="validation images per class (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--size", type=int, default=160, help="max long side in px (default: %(default)s)")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    ap.add_argument("--max-megapixels", type=float, default=50.0, help="skip source files larger than this")
    ap.add_argument("--min-ink", type=float, default=0.05, help="min non-white fraction of the cropped render")
    ap.add_argument("--max-one-colour", type=float, default=0.85, help="max fraction of non-white pixels in one colour")
    ap.add_argument("--max-aspect", type=float, default=3.5)
    ap.add_argument(
        "--similar-bits",
        type=int,
        default=24,
        help="renders whose 256-bit dhashes differ in at most this many bits count as near-duplicates",
    )
    ap.add_argument(
        "--max-per-group",
        type=int,
        default=3,
        help="max near-variant / same-series images per group (train may exceed it only to reach --n-train)",
    )
    ap.add_argument("--no-balance", action="store_true", help="do not cut every class to the smallest class's size")
    args = ap.parse_args(argv)

    if not args.source.is_dir():
        print(
            f"source folder {args.source} not found; install it with\n"
            "  apt-get install -y --no-install-recommends openclipart-png",
            file=sys.stderr,
        )
        return 1
    # We check the size ourselves before decoding; no bomb warnings needed.
    Image.MAX_IMAGE_PIXELS = None
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    max_pixels = int(args.max_megapixels * 1e6)

    listed = {cls: list_candidates(args.source, cls, spec) for cls, spec in CLASSES.items()}
    # A drawing filed under more than one class is ambiguous: drop it.
    owners: dict[str, set[str]] = {}
    for cls, cands in listed.items():
        for c in cands:
            owners.setdefault(c.group, set()).add(cls)
    usable: dict[str, list[Candidate]] = {}
    for cls, cands in listed.items():
        for c in cands:
            if len(owners[c.group]) > 1:
                print(f"  skip {c.rel}: also listed under another class")
        cands = [c for c in cands if len(owners[c.group]) == 1]
        ok, digests = [], set()
        for c in cands:
            try:
                im = render(c.path, args.size, max_pixels)
            except Exception as e:  # one bad file never stops the run
                print(f"  skip {c.rel}: {e}")
                continue
            why = quality_problem(im, args.min_ink, args.max_one_colour, args.max_aspect)
            if why:
                print(f"  skip {c.rel}: {why}")
                continue
            digest = hashlib.sha1(im.tobytes()).hexdigest()
            if digest in digests:
                print(f"  skip {c.rel}: duplicate picture")
                continue
            digests.add(digest)
            c.image = im
            ok.append(c)
        merge_similar_groups(ok, args.similar_bits)
        print(f"{cls}: {len(cands)} candidates, {len(ok)} usable")
        usable[cls] = ok

    n_val, n_train = args.n_val, args.n_train
    if not args.no_balance:
        smallest = min(len(v) for v in usable.values())
        if smallest < n_val + n_train:
            n_train = max(0, smallest - n_val)
            print(
                f"note: smallest class has {smallest} usable images; "
                f"using {n_train} train + {n_val} validation per class"
            )

    rows = []
    for cls_i, (cls, cands) in enumerate(usable.items()):
        rng = random.Random(args.seed * 1000 + cls_i)
        chosen = choose(cands, n_train, n_val, args.max_per_group, rng)
        for split in SPLITS:
            d = args.out / split / cls
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
            names: set[str] = set()
            for c in sorted(chosen[split], key=lambda x: x.rel):
                name = sanitize(c.stem)
                while name.lower() in names:
                    name += "_x"
                names.add(name.lower())
                c.image.save(d / f"{name}.jpg", "JPEG", quality=args.quality, optimize=True)
                rows.append((f"{split}/{cls}/{name}.jpg", c.rel))
            print(f"  {split}/{cls}: {len(chosen[split])} images")
            if len(chosen[split]) < (n_val if split == "validation" else n_train):
                print(f"  warning: {split}/{cls} is short of the requested count")
    with open(args.out / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "source"])
        w.writerows(sorted(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
