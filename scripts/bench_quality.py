"""How real the built-in swap looks: swap each person's photo onto other people's photos and score the results.

    .venv/bin/python scripts/bench_quality.py --gallery PEOPLE_DIR [--out DIR] [--limit N]
        [--groups GROUPS_DIR] [--swapper-options key=value ...] [--vary NAME]

PEOPLE_DIR holds one folder per person (``<name>/*.jpg``). For each person P with two or more photos,
each photo A of P is swapped (mode ``one``) onto each photo T of every other person. The judge is dlib
(HOG detector, 68 landmarks, face recognition ResNet), not the swapper's own MediaPipe analysis:

- found: the swapper swapped a face and dlib finds a face in the result where the target's face was;
- identity: the result's nearest photo among every gallery photo except A is one of P's (top-1), and the
  mean descriptor distance to P's other photos;
- mouth / all-point NME, seam, cheek ΔE, sharpness ratio: see ``swapface.quality``.

A case meets every threshold when found, identity right, NME ≤ 0.10, seam ≤ 1.0 and ΔE ≤ 10. Writes
results.json and contact sheets (source | target | result, labelled) to --out; ``--groups`` also swaps
the first source in ``many`` mode onto each group photo and saves those sheets (visual only).

``--vary NAME`` changes every gallery photo the same way before the run (a colour cast, a bright, dim or side light,
a small or large copy, greyscale, heavy JPEG, noise, blur, a roll, a mirror image): how the swap holds up on
photos unlike the gallery's, since a gallery is never the photos users bring.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import cv2
import numpy as np

from swapface import quality
from swapface.faces.analyser import FaceAnalyser
from swapface.media.image import is_image_path, read_image
from swapface.options import SwapOptions
from swapface.pipeline import FrameEvent, Pipeline

THRESHOLDS = {"nme": 0.10, "seam": 1.0, "cheek_delta_e": 10.0}
THUMB = 256


@dataclass
class Case:
    """One source → target swap and its scores (None where not measurable)."""

    source: str
    target: str
    person: str
    swapped: bool
    found: bool
    identity_top1: bool
    nearest: str | None
    distance_to_person: float | None
    mouth_nme: float | None
    nme: float | None
    seam: float | None
    cheek_delta_e: float | None
    sharpness_ratio: float | None
    render_ms: float | None

    @property
    def meets_every_threshold(self) -> bool:
        """Found, recognised, and within the NME, seam and ΔE limits."""
        return bool(
            self.found and self.identity_top1
            and self.nme is not None and self.nme <= THRESHOLDS["nme"]
            and self.seam is not None and self.seam <= THRESHOLDS["seam"]
            and self.cheek_delta_e is not None and self.cheek_delta_e <= THRESHOLDS["cheek_delta_e"]
        )


def fail(message: str) -> None:
    """One line on stderr and exit status 2, as the swapface CLI does for bad input."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _scaled_to(side: int):
    def scale(image: np.ndarray) -> np.ndarray:
        factor = side / max(image.shape[:2])
        return cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)
    return scale


def _gain(rgb: tuple[float, float, float]):
    return lambda image: np.clip(image.astype(np.float32) * np.float32(rgb), 0, 255).astype(np.uint8)


def _jpeg(image: np.ndarray, quality_level: int = 15) -> np.ndarray:
    _, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality_level])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED)


def _side_light(image: np.ndarray) -> np.ndarray:
    ramp = np.linspace(1.25, 0.45, image.shape[1], dtype=np.float32)[None, :, None]
    return np.clip(image * ramp, 0, 255).astype(np.uint8)


def _rolled(image: np.ndarray, degrees: float = 20.0) -> np.ndarray:
    h, w = image.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(image, turn, (w, h), borderMode=cv2.BORDER_REFLECT)


VARIATIONS = {  # RGB images in, RGB images out
    "small": _scaled_to(220), "large": _scaled_to(2400),
    "warm": _gain((1.25, 0.95, 0.7)), "cool": _gain((0.75, 1.0, 1.25)), "green": _gain((0.85, 1.15, 0.85)),
    "bright": lambda image: (255.0 * (image / 255.0) ** 0.55).astype(np.uint8),
    "dim": lambda image: (255.0 * (image / 255.0) ** 1.8).astype(np.uint8), "side-light": _side_light,
    "grey": lambda image: cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB),
    "jpeg": _jpeg, "noise": lambda image: np.clip(image + np.random.default_rng(0).normal(0, 12, image.shape), 0, 255).astype(np.uint8),
    "blur": lambda image: cv2.GaussianBlur(image, (0, 0), 2.0), "roll": _rolled, "mirror": lambda image: np.ascontiguousarray(image[:, ::-1]),
}


def parse_swapper_options(pairs: list[str]) -> dict[str, object]:
    """``key=value`` pairs into SwapOptions fields (values parsed as JSON where they parse, else strings)."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            fail(f"--swapper-options takes key=value, got {pair!r}")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            options[key.replace("-", "_")] = value
    return options


def gallery_photos(root: Path) -> dict[str, list[Path]]:
    """Person name → their photos, sorted."""
    people = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(p for p in folder.iterdir() if p.is_file() and is_image_path(p))
        if photos:
            people[folder.name] = photos
    if not people:
        fail(f"no person folders with photos in {root}")
    return people


def label_of(path: Path) -> str:
    """'person/photo' for printing."""
    return f"{path.parent.name}/{path.name}"


def thumbnail(image: np.ndarray, box: tuple[int, int, int, int] | None) -> np.ndarray:
    """A crop around the face (or the whole image), THUMB pixels high."""
    if box is not None:
        x1, y1, x2, y2 = quality.grow_box(box, image.shape, 0.45)
        image = image[y1:y2, x1:x2]
    width = max(1, round(image.shape[1] * THUMB / image.shape[0]))
    return cv2.resize(image, (width, THUMB), interpolation=cv2.INTER_AREA)


def text_panel(lines: list[str], width: int = 380) -> np.ndarray:
    """White panel with black text lines, THUMB pixels high."""
    panel = np.full((THUMB, width, 3), 255, np.uint8)
    for row, line in enumerate(lines):
        colour = (200, 0, 0) if line.startswith("!") else (0, 0, 0)
        cv2.putText(panel, line.lstrip("!"), (6, 22 + row * 22), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return panel


def sheet_row(panels: list[np.ndarray]) -> np.ndarray:
    """Panels side by side with a thin gap."""
    gap = np.full((THUMB, 4, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for panel in panels:
        parts.extend([panel, gap])
    return np.concatenate(parts[:-1], axis=1)


def write_sheets(rows: list[np.ndarray], out: Path, stem: str, per_sheet: int = 10) -> list[Path]:
    """Stack rows into PNG sheets of ``per_sheet`` rows each (rows padded to the widest)."""
    paths = []
    for start in range(0, len(rows), per_sheet):
        chunk = rows[start:start + per_sheet]
        width = max(r.shape[1] for r in chunk)
        padded = [np.pad(r, ((0, 6), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in chunk]
        path = out / f"{stem}_{start // per_sheet + 1:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(np.concatenate(padded, axis=0), cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


def fmt(value: float | None, pattern: str = "{:.2f}") -> str:
    return "n/a" if value is None else pattern.format(value)


def case_lines(case: Case) -> list[str]:
    """The labels of a contact-sheet row; lines over a threshold start with '!' (drawn red)."""
    def flag(bad: bool) -> str:
        return "!" if bad else ""

    return [
        f"{case.source} -> {case.target}",
        f"{flag(not case.found)}found {case.found}  swapped {case.swapped}",
        f"{flag(not case.identity_top1)}identity top1 {case.identity_top1} ({case.nearest})",
        f"dist to person {fmt(case.distance_to_person, '{:.3f}')}",
        (f"{flag(case.nme is None or case.nme > THRESHOLDS['nme'])}NME {fmt(case.nme, '{:.3f}')}"
        f"  mouth {fmt(case.mouth_nme, '{:.3f}')}"),
        f"{flag(case.seam is None or case.seam > THRESHOLDS['seam'])}seam {fmt(case.seam)}",
        (f"{flag(case.cheek_delta_e is None or case.cheek_delta_e > THRESHOLDS['cheek_delta_e'])}"
        f"cheek dE {fmt(case.cheek_delta_e, '{:.1f}')}"),
        f"sharpness {fmt(case.sharpness_ratio)}",
        f"{flag(not case.meets_every_threshold)}meets every threshold {case.meets_every_threshold}",
    ]


def totals(cases: list[Case]) -> dict[str, float | int | None]:
    """The summary figures over all cases."""
    def values(name: str) -> list[float]:
        return [v for v in (getattr(c, name) for c in cases) if v is not None]

    def mean(name: str) -> float | None:
        vs = values(name)
        return float(np.mean(vs)) if vs else None

    def median(name: str) -> float | None:
        vs = values(name)
        return float(np.median(vs)) if vs else None

    n = len(cases)
    return {
        "cases": n,
        "found_rate": sum(c.found for c in cases) / n if n else None,
        "identity_top1_rate": sum(c.identity_top1 for c in cases) / n if n else None,
        "distance_to_person_mean": mean("distance_to_person"),
        "cheek_delta_e_mean": mean("cheek_delta_e"),
        "cheek_delta_e_over_10": sum(1 for v in values("cheek_delta_e") if v > THRESHOLDS["cheek_delta_e"]),
        "seam_median": median("seam"),
        "seam_over_1": sum(1 for v in values("seam") if v > THRESHOLDS["seam"]),
        "mouth_nme_mean": mean("mouth_nme"),
        "nme_mean": mean("nme"),
        "sharpness_ratio_median": median("sharpness_ratio"),
        "meets_every_threshold_rate": sum(c.meets_every_threshold for c in cases) / n if n else None,
        "render_ms_per_face_median": median("render_ms"),
    }


def total_rows(summary: dict) -> list[tuple[str, str]]:
    """The totals as (name, formatted value) rows."""
    return [
        ("cases", fmt(summary["cases"], "{:d}")),
        ("dlib finds the swapped face", fmt(summary["found_rate"])),
        ("identity top-1 (against the person's other photos)", fmt(summary["identity_top1_rate"])),
        ("mean descriptor distance to the person's other photos", fmt(summary["distance_to_person_mean"], "{:.3f}")),
        ("cheek ΔE mean; cases over 10",
         f"{fmt(summary['cheek_delta_e_mean'], '{:.1f}')}; {summary['cheek_delta_e_over_10']}"),
        ("seam median; cases over 1.0", f"{fmt(summary['seam_median'])}; {summary['seam_over_1']}"),
        ("mouth NME mean", fmt(summary["mouth_nme_mean"], "{:.3f}")),
        ("all-point NME mean", fmt(summary["nme_mean"], "{:.3f}")),
        ("sharpness ratio median", fmt(summary["sharpness_ratio_median"])),
        ("share meeting every threshold", fmt(summary["meets_every_threshold_rate"])),
        ("render ms per face (median)", fmt(summary["render_ms_per_face_median"], "{:.1f}")),
    ]


def print_totals(summary: dict, baseline: dict | None = None) -> None:
    """The totals as a Markdown table, beside a baseline run's where one is given."""
    if baseline is None:
        print("| metric | value |\n|---|---|")
        for name, value in total_rows(summary):
            print(f"| {name} | {value} |")
        return
    print("| metric | baseline | this run |\n|---|---|---|")
    for (name, value), (_, before) in zip(total_rows(summary), total_rows(baseline)):
        print(f"| {name} | {before} | {value} |")


def load_baseline(path: Path, cases: list[Case]) -> dict:
    """A previous run's totals over the same pairs as this run (pairs it lacks are left out of both)."""
    try:
        doc = json.loads(path.read_text())
        old = {(c["source"], c["target"]): c for c in doc["cases"]}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        fail(f"cannot read the baseline {path}: {exc}")
    fields = set(Case.__dataclass_fields__)
    same = [Case(**{k: v for k, v in old[(c.source, c.target)].items() if k in fields})
            for c in cases if (c.source, c.target) in old]
    if len(same) < len(cases):
        print(f"note: the baseline has {len(same)} of this run's {len(cases)} pairs; "
              "the baseline column covers those only", file=sys.stderr)
    return totals(same)


def render(pipe: Pipeline, target: np.ndarray, faces: list) -> tuple[np.ndarray, int, float]:
    """The swapped target, the number of faces swapped and the render time in ms (analysis excluded)."""
    event = FrameEvent(index=0, frame=target, faces=faces, targets=pipe.select(faces))
    start = time.perf_counter()
    out = pipe.render_frame(event)
    return out, len(event.targets), (time.perf_counter() - start) * 1000


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gallery", type=Path, required=True, help="one folder of photos per person")
    parser.add_argument("--out", type=Path, default=Path("/tmp/bench_quality"), help="results.json and sheets")
    parser.add_argument("--limit", type=int, default=None, help="at most N source → target pairs (spread evenly)")
    parser.add_argument("--match", default=None, metavar="TEXT",
                        help="only pairs whose 'person/photo -> person/photo' label contains TEXT")
    parser.add_argument("--baseline", type=Path, default=None, metavar="RESULTS_JSON",
                        help="a previous run's results.json: print its totals beside this run's")
    parser.add_argument("--groups", type=Path, default=None, help="group photos to swap onto in 'many' mode")
    parser.add_argument("--swapper-options", nargs="*", default=[], metavar="KEY=VALUE",
                        help="SwapOptions fields, e.g. face_mask_blur=0.5")
    parser.add_argument("--vary", choices=sorted(VARIATIONS), default=None,
                        help="change every gallery photo this way first (see above)")
    args = parser.parse_args(argv)
    if not args.gallery.is_dir():
        fail(f"gallery folder not found: {args.gallery}")
    if args.groups is not None and not args.groups.is_dir():
        fail(f"groups folder not found: {args.groups}")
    if args.limit is not None and args.limit < 1:
        fail("--limit must be at least 1")
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        options = SwapOptions(**{"face_selector_mode": "one", **parse_swapper_options(args.swapper_options)})
    except ValueError as exc:
        fail(f"bad --swapper-options: {' '.join(str(exc).split())}")

    people = gallery_photos(args.gallery)
    scorer = quality.DlibScorer()
    analyser = FaceAnalyser.from_options(options, video=False)
    vary = VARIATIONS[args.vary] if args.vary else (lambda image: image)
    images = {p: vary(read_image(p)) for photos in people.values() for p in photos}
    started = time.perf_counter()
    scored = {p: scorer.main_face(img) for p, img in images.items()}  # the judge's view of every photo, once
    for path, face in scored.items():
        if face is None:
            print(f"warning: dlib finds no face in {label_of(path)}; it is left out of the gallery", file=sys.stderr)
    pairs = [(person, a, t) for person, photos in people.items() if len(photos) >= 2 for a in photos
             for other, theirs in people.items() if other != person for t in theirs
             if scored[a] is not None and scored[t] is not None]
    if args.match:
        pairs = [p for p in pairs if args.match in f"{label_of(p[1])} -> {label_of(p[2])}"]
    if args.limit is not None and args.limit < len(pairs):
        picks = np.linspace(0, len(pairs) - 1, args.limit).round().astype(int)
        pairs = [pairs[i] for i in sorted(set(picks))]
    print(f"# {len(pairs)} pairs, gallery {sum(len(v) for v in people.values())} photos of {len(people)} people")

    target_faces: dict[Path, list] = {}
    pipelines: dict[Path, Pipeline | None] = {}
    cases: list[Case] = []
    rows: list[np.ndarray] = []
    for number, (person, a, t) in enumerate(pairs):
        if a not in pipelines:
            try:
                pipelines[a] = Pipeline([images[a]], options, analyser=analyser)
            except Exception as exc:  # noqa: BLE001 - a source the swapper refuses is a result, not a crash
                print(f"warning: {label_of(a)} refused as a source: {exc}", file=sys.stderr)
                pipelines[a] = None
        if t not in target_faces:
            target_faces[t] = analyser.analyse(images[t])
        pipe, target, target_face = pipelines[a], images[t], scored[t]
        assert target_face is not None
        if pipe is None:
            out, swapped, ms = target.copy(), 0, None
        else:
            try:
                if number == 0:
                    render(pipe, target, target_faces[t])  # warm-up: first-call costs are not render time
                out, swapped, ms = render(pipe, target, target_faces[t])
            except Exception as exc:  # noqa: BLE001 - a target the swapper refuses is a result, not a crash
                print(f"warning: {label_of(a)} -> {label_of(t)} refused: {exc}", file=sys.stderr)
                out, swapped, ms = target.copy(), 0, None
        found = quality.output_face(out, target_face, scorer)
        metrics = quality.compare(out, target, target_face, found)
        gallery = [(label_of(p).split("/")[0], f.descriptor) for p, f in scored.items() if f is not None and p != a]
        nearest = distance = None
        top1 = False
        if found is not None:
            descriptor = found.descriptor
            nearest, _ = quality.nearest(descriptor, gallery)
            top1 = nearest == person
            distance = quality.mean_distance(descriptor, [v for name, v in gallery if name == person])
        case = Case(label_of(a), label_of(t), person, swapped > 0, swapped > 0 and metrics.found, top1, nearest, distance,
                    metrics.mouth_nme, metrics.nme, metrics.seam, metrics.cheek_delta_e, metrics.sharpness_ratio,
                    ms / swapped if ms is not None and swapped else None)
        cases.append(case)
        print(f"{case.source:>26} -> {case.target:<26} found={int(case.found)} id={int(case.identity_top1)} "
              f"dist={fmt(case.distance_to_person, '{:.3f}')} mouth={fmt(case.mouth_nme, '{:.3f}')} "
              f"nme={fmt(case.nme, '{:.3f}')} seam={fmt(case.seam)} dE={fmt(case.cheek_delta_e, '{:.1f}')} "
              f"sharp={fmt(case.sharpness_ratio)} ms={fmt(case.render_ms, '{:.0f}')} "
              f"all={int(case.meets_every_threshold)}", flush=True)
        source_face = scored[a]
        rows.append(sheet_row([thumbnail(images[a], source_face.box if source_face else None),
                               thumbnail(target, target_face.box), thumbnail(out, target_face.box),
                               text_panel(case_lines(case))]))

    summary = totals(cases)
    elapsed = time.perf_counter() - started
    print(f"\n# {platform.machine()} {platform.processor() or ''} — {date.today()} — {len(cases)} cases in {elapsed:.0f} s")
    print_totals(summary, load_baseline(args.baseline, cases) if args.baseline else None)
    sheets = write_sheets(rows, args.out, "pairs")

    group_sheets: list[Path] = []
    if args.groups is not None:
        group_sheets = swap_groups(args.groups, people, images, options, args.out)

    result = {
        "date": str(date.today()),
        "machine": f"{platform.machine()} {platform.processor()}".strip(),
        "options": options.model_dump(mode="json"), "vary": args.vary,
        "thresholds": THRESHOLDS,
        "seconds": elapsed,
        "totals": summary,
        "cases": [{**asdict(c), "meets_every_threshold": c.meets_every_threshold} for c in cases],
        "sheets": [str(p) for p in sheets + group_sheets],
    }
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    print(f"\nresults → {args.out / 'results.json'}; sheets → {args.out}/pairs_*.png"
          + (f", {args.out}/groups_*.png" if group_sheets else ""))


def swap_groups(root: Path, people: dict[str, list[Path]], images: dict[Path, np.ndarray], options: SwapOptions,
                out: Path) -> list[Path]:
    """Swap the gallery's first photo onto every face of each group photo (mode many); target | result sheets."""
    source = next(iter(people.values()))[0]
    many = options.model_copy(update={"face_selector_mode": "many"})
    analyser = FaceAnalyser.from_options(many, video=False)
    pipe = Pipeline([images[source]], many, analyser=analyser)
    rows = []
    for path in sorted(p for p in root.iterdir() if p.is_file() and is_image_path(p)):
        target = read_image(path)
        out_image, swapped, ms = render(pipe, target, analyser.analyse(target))
        print(f"group {path.name}: {swapped} faces swapped in {ms:.0f} ms")
        scale = 2 * THUMB / target.shape[0]
        size = (max(1, round(target.shape[1] * scale)), 2 * THUMB)
        pair = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in (target, out_image)]
        gap = np.full((2 * THUMB, 4, 3), 255, np.uint8)
        row = np.concatenate([pair[0], gap, pair[1]], axis=1)
        cv2.putText(row, f"{path.name}: {swapped} faces, source {label_of(source)}", (8, 24),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 0), 2, cv2.LINE_AA)
        rows.append(row)
    paths = []
    for index, row in enumerate(rows, start=1):
        path = out / f"groups_{index:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(row, cv2.COLOR_RGB2BGR))
        paths.append(path)
    return paths


if __name__ == "__main__":
    main()
