"""Labelling helper for the doorway corpus: contact sheets and frame stepping.

Usage:
    python tests/corpus/label_sheet.py sheet VIDEO START STOP [--step N] [--cols C] [--width W]
        [--line x1,y1,x2,y2] [--crop x1,y1,x2,y2] [--out sheet.png]
    python tests/corpus/label_sheet.py motion VIDEO [--line x1,y1,x2,y2] [--band 0.08]
    python tests/corpus/label_sheet.py slit VIDEO --line x1,y1,x2,y2 --inside x,y
        [--offset 0.04] [--start N] [--stop N] [--out slit.png]
    python tests/corpus/label_sheet.py suggest VIDEO --line x1,y1,x2,y2 --inside x,y
        [--reference feet|centre]
    python tests/corpus/label_sheet.py check VIDEO --line x1,y1,x2,y2 FRAME:POS[:NOTE] ...
        [--offsets=-16,-8,-4,0,4,8,16] [--crop-size 0.22,0.4] [--out check.png]
    python tests/corpus/label_sheet.py similar CLIP ... --against VIDEO ... [--samples 60]

`sheet` tiles frames START..STOP (every N-th, decode order, every frame decoded
because OpenCV's seeking and frame counts are wrong for some containers), each
stamped with its frame number, with the threshold line (normalized
coordinates) drawn, so a labeller can step through a crossing frame by frame.
`motion` prints the frame ranges where the frame difference is large near the
line: the places to look at with `sheet`.
`slit` samples the pixels along the line, and along two parallels at
``--offset`` on its inside and outside, in every frame, and stacks them in
time (one row per frame, time downwards, a tick and frame number every
second): every crossing is a streak on the middle strip, and which outer strip
it reaches first gives the direction (left panel = inside). A whole clip on one
image: the place to count crossings and find their frames before checking each
with `sheet` or `check`. `suggest` lists candidate crossings found on those
strips (a worklist, never labels). `check` draws one row per candidate
``FRAME:POS`` (POS = 0..1 along the line): crops around that point of the line
at the given frame offsets, the candidate's own frame outlined, so frame and
direction can be read by eye for many candidates at once. `similar` tells
whether a candidate clip is footage the issue keeps back (another encoding,
size or cut of it): it prints, per clip, the best correlation of its frames,
shrunk to 32x18 grey, with those of the reference videos and the share of its
frames that match one (> 0.97) — numbers only, the references are never shown;
a copy scores ~1.0, unrelated footage below ~0.6.  A tool for people; nothing in the
product imports it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

Frame = NDArray[np.uint8]


def _frames(video: Path, start: int, stop: int, step: int) -> list[tuple[int, Frame]]:
    cap = cv2.VideoCapture(str(video))
    out: list[tuple[int, Frame]] = []
    index = 0
    while index <= stop:
        ok, frame = cap.read()
        if not ok:
            break
        if index >= start and (index - start) % step == 0:
            out.append((index, frame))
        index += 1
    cap.release()
    return out


def _line(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    x1, y1, x2, y2 = (float(v) for v in text.split(","))
    return x1, y1, x2, y2


def sheet(args: argparse.Namespace) -> None:
    """Write a contact sheet of the requested frames."""
    frames = _frames(Path(args.video), args.start, args.stop, args.step)
    if not frames:
        sys.exit("no frames in that range")
    line = _line(args.line)
    tiles = []
    crop = _line(args.crop)
    for index, frame in frames:
        if crop is not None:
            fh, fw = frame.shape[:2]
            cx1, cy1, cx2, cy2 = crop
            frame = frame[round(cy1 * fh) : round(cy2 * fh), round(cx1 * fw) : round(cx2 * fw)]
        h, w = frame.shape[:2]
        scale = args.width / w
        tile = cv2.resize(frame, (args.width, round(h * scale)), interpolation=cv2.INTER_AREA)
        th, tw = tile.shape[:2]
        if line is not None:
            x1, y1, x2, y2 = line
            if crop is not None:
                cx1, cy1, cx2, cy2 = crop
                x1, x2 = ((x - cx1) / (cx2 - cx1) for x in (x1, x2))
                y1, y2 = ((y - cy1) / (cy2 - cy1) for y in (y1, y2))
            ends = (round(x1 * tw), round(y1 * th)), (round(x2 * tw), round(y2 * th))
            cv2.line(tile, *ends, (0, 0, 255), 1)
        cv2.putText(tile, str(index), (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3)
        cv2.putText(tile, str(index), (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1)
        tiles.append(tile)
    th, tw = tiles[0].shape[:2]
    while len(tiles) % args.cols:
        tiles.append(np.zeros((th, tw, 3), np.uint8))
    rows = [np.hstack(tiles[i : i + args.cols]) for i in range(0, len(tiles), args.cols)]
    cv2.imwrite(args.out, np.vstack(rows))
    print(args.out)


def motion(args: argparse.Namespace) -> None:
    """Print frame ranges with motion near the line (or anywhere without one)."""
    cap = cv2.VideoCapture(str(args.video))
    line = _line(args.line)
    prev: Frame | None = None
    mask: Frame | None = None
    active: list[int] = []
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        small = cv2.resize(frame, (160, round(160 * frame.shape[0] / frame.shape[1])))
        gray = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        if mask is None:
            mask = np.full(gray.shape, 255, np.uint8)
            if line is not None:
                mask[:] = 0
                h, w = gray.shape
                x1, y1, x2, y2 = line
                thick = max(2, round(args.band * h))
                ends = (round(x1 * w), round(y1 * h)), (round(x2 * w), round(y2 * h))
                cv2.line(mask, *ends, 255, thick)
        if prev is not None:
            diff = cv2.absdiff(gray, prev)
            moving = int(np.count_nonzero((diff > 25) & (mask > 0)))
            if moving > args.min_pixels:
                active.append(index)
        prev = gray
        index += 1
    cap.release()
    print(f"{index} frames decoded")
    if not active:
        return
    start = last = active[0]
    for i in [*active[1:], 10**9]:
        if i - last > args.gap:
            print(f"motion {start}-{last}")
            start = i
        last = i


def _along(frame: Frame, a: tuple[float, float], b: tuple[float, float], n: int) -> Frame:
    """``n`` pixels sampled (bilinear) on the segment a-b, normalized coordinates."""
    h, w = frame.shape[:2]
    t = np.linspace(0.0, 1.0, n, dtype=np.float32)
    xs = ((a[0] + (b[0] - a[0]) * t) * (w - 1)).reshape(1, n)
    ys = ((a[1] + (b[1] - a[1]) * t) * (h - 1)).reshape(1, n)
    row: Frame = cv2.remap(frame, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return row


def _strips(args: argparse.Namespace) -> tuple[list[list[Frame]], float, int]:
    """Per frame, the pixels along the inside parallel, the line and the outside parallel."""
    line = _line(args.line)
    if line is None:
        sys.exit("slit needs --line")
    ix, iy = (float(v) for v in args.inside.split(","))
    x1, y1, x2, y2 = line
    cap = cv2.VideoCapture(str(args.video))
    fw, fh = cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)
    # Offsets are taken perpendicular to the line in pixels, so the normal is computed there.
    dx, dy = (x2 - x1) * fw, (y2 - y1) * fh
    length = float(np.hypot(dx, dy)) or 1.0
    nx, ny = -dy / length, dx / length
    if (ix - x1) * fw * nx + (iy - y1) * fh * ny < 0:
        nx, ny = -nx, -ny
    off = args.offset * max(fw, fh)
    n = max(16, min(400, round(length)))
    rows: list[list[Frame]] = [[], [], []]
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    index = 0
    while True:
        ok, frame = cap.read()
        if not ok or (args.stop is not None and index > args.stop):
            break
        if index >= args.start:
            for k, sign in enumerate((1.0, 0.0, -1.0)):
                sx, sy = sign * off * nx / fw, sign * off * ny / fh
                rows[k].append(_along(frame, (x1 + sx, y1 + sy), (x2 + sx, y2 + sy), n))
        index += 1
    cap.release()
    if not rows[0]:
        sys.exit("no frames in that range")
    return rows, fps, n


def slit(args: argparse.Namespace) -> None:
    """Write the space-time image of the line and two parallels (see the module docstring)."""
    rows, fps, n = _strips(args)
    rpf = args.rows_per_frame
    panels = [cv2.resize(np.vstack(r), (args.width or n, len(r) * rpf),
                         interpolation=cv2.INTER_AREA if (args.width or n) < n
                         else cv2.INTER_NEAREST) for r in rows]
    gap = np.full((panels[0].shape[0], 6, 3), 255, np.uint8)
    image = np.hstack([panels[0], gap, panels[1], gap, panels[2]])
    margin = np.zeros((image.shape[0], 48, 3), np.uint8)
    step = max(1, round(fps))
    for k in range(0, len(rows[0]), args.tick):
        # Minor ticks every --tick frames, a major tick and the frame number every second.
        i = k * rpf
        major = (args.start + k) % step == 0
        margin[i, 40 if not major else 0 :] = (0, 255, 255) if major else (0, 160, 160)
        if major or rpf >= 4:
            cv2.putText(margin, str(args.start + k), (1, min(i + 10, image.shape[0] - 2)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.33, (0, 255, 255), 1)
    out = np.hstack([margin, image])
    if args.split and out.shape[0] > args.split:
        # Long clips: side-by-side columns so the image stays viewable.
        parts = [out[i : i + args.split] for i in range(0, out.shape[0], args.split)]
        parts[-1] = np.vstack([parts[-1], np.zeros((args.split - parts[-1].shape[0],
                                                    out.shape[1], 3), np.uint8)])
        sep = np.full((args.split, 10, 3), 128, np.uint8)
        out = np.hstack([p for part in parts for p in (part, sep)])
    cv2.imwrite(args.out, out)
    print(args.out, f"frames {args.start}-{args.start + len(rows[0]) - 1}",
          "panels: inside | line | outside")


def suggest(args: argparse.Namespace) -> None:
    """Print candidate crossings found on the space-time strips, for a person to check.

    Foreground = far from the per-pixel median of the strip over the whole clip. A blob on
    the line strip is a candidate; the outer strip whose overlapping blob comes first gives
    the side it came from. ``frame`` follows the lowest-point convention: the first frame
    of the blob on the line when the person moves away from the top of the picture
    (``--reference feet``), its middle for ``centre``. Only a proposal: every one is to be
    looked at with ``sheet`` before it becomes a label.
    """
    rows, _fps, n = _strips(args)
    stacks = [np.vstack(r).astype(np.int16) for r in rows]
    masks = []
    for st in stacks:
        bg = np.median(st, axis=0).astype(np.int16)
        fg = (np.abs(st - bg).max(axis=2) > args.threshold).astype(np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, np.ones((5, 3), np.uint8))
        masks.append(fg)
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(masks[1], connectivity=8)
    found = []
    for k in range(1, count):
        x, t, w, h, area = (int(v) for v in stats[k])
        if area < args.min_area or h < 2:
            continue
        cols = slice(x, x + w)
        first: list[float] = []
        for side in (0, 2):
            ts = np.nonzero(masks[side][:, cols].any(axis=1))[0]
            near = ts[(ts >= t - args.window) & (ts <= t + h + args.window)]
            first.append(float(near.mean()) if near.size else float("nan"))
        inside_t, outside_t = first
        if np.isnan(inside_t) and np.isnan(outside_t):
            direction = "?"
        elif np.isnan(outside_t) or (not np.isnan(inside_t) and inside_t < outside_t):
            direction = "out"
        else:
            direction = "in"
        if args.reference == "centre":
            frame = t + h // 2
        else:
            # Lowest point: it meets the line first when moving down the picture and leaves
            # it last when moving up.
            down = direction == ("out" if args.inside_above else "in")
            frame = t if down else t + h - 1
        found.append((args.start + frame, direction, round((x + w / 2) / n, 3),
                      args.start + t, args.start + t + h - 1, area))
    for f in sorted(found):
        print(f"frame {f[0]:5d} {f[1]:3s} at {f[2]:.3f} of the line "
              f"(on the line {f[3]}-{f[4]}, area {f[5]})")


def check(args: argparse.Namespace) -> None:
    """Write one row of crops per candidate crossing (see the module docstring)."""
    line = _line(args.line)
    if line is None:
        sys.exit("check needs --line")
    offsets = [int(v) for v in args.offsets.split(",")]
    cw, ch = (float(v) for v in args.crop_size.split(","))
    cands = []
    for item in args.candidates:
        parts = item.split(":", 2)
        cands.append((int(parts[0]), float(parts[1]), parts[2] if len(parts) > 2 else ""))
    need = {f + o for f, _, _ in cands for o in offsets}
    cap = cv2.VideoCapture(str(args.video))
    frames: dict[int, Frame] = {}
    index = 0
    while index <= max(need):
        ok, frame = cap.read()
        if not ok:
            break
        if index in need:
            frames[index] = frame
        index += 1
    cap.release()
    if not frames:
        sys.exit("no frames in that range")
    fh, fw = next(iter(frames.values())).shape[:2]
    x1, y1, x2, y2 = line
    rows = []
    for frame_no, pos, note in cands:
        cx, cy = x1 + (x2 - x1) * pos, y1 + (y2 - y1) * pos
        left = round(max(0.0, min(1.0 - cw, cx - cw / 2)) * fw)
        top = round(max(0.0, min(1.0 - ch, cy - ch / 2)) * fh)
        right, bottom = min(fw, left + round(cw * fw)), min(fh, top + round(ch * fh))
        scale = args.width / (right - left)
        tiles = []
        for off in offsets:
            image = frames.get(frame_no + off)
            if image is None:
                image = np.zeros((fh, fw, 3), np.uint8)
            tile = cv2.resize(image[top:bottom, left:right],
                              (args.width, round((bottom - top) * scale)))
            ends = ((round((x1 * fw - left) * scale), round((y1 * fh - top) * scale)),
                    (round((x2 * fw - left) * scale), round((y2 * fh - top) * scale)))
            cv2.line(tile, *ends, (0, 0, 255), 1)
            cv2.putText(tile, str(frame_no + off), (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        (0, 255, 255), 1)
            if off == 0:
                cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1),
                              (0, 255, 0), 1)
            tiles.append(tile)
        row = np.hstack(tiles)
        cv2.putText(row, note, (2, row.shape[0] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 0), 1)
        rows.append(row)
    cv2.imwrite(args.out, np.vstack(rows))
    print(args.out)


def _thumbnails(video: Path, samples: int) -> NDArray[np.float32]:
    """Up to ``samples`` evenly spaced frames, 32x18 grey, each of zero mean and unit std."""
    cap = cv2.VideoCapture(str(video))
    small: list[NDArray[np.float32]] = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        gray = cv2.cvtColor(cv2.resize(frame, (32, 18), interpolation=cv2.INTER_AREA),
                            cv2.COLOR_BGR2GRAY)
        small.append(gray.astype(np.float32).ravel())
    cap.release()
    if not small:
        return np.zeros((0, 32 * 18), np.float32)
    chosen = np.linspace(0, len(small) - 1, min(samples, len(small))).astype(int)
    picked = np.stack([small[i] for i in chosen])
    picked -= picked.mean(axis=1, keepdims=True)
    picked /= picked.std(axis=1, keepdims=True) + 1e-6
    return picked


def similar(args: argparse.Namespace) -> None:
    """Print, per clip, how closely its frames match any reference video (a copy scores ~1)."""
    refs = {Path(p).name: _thumbnails(Path(p), args.samples) for p in args.against}
    for clip in args.clips:
        mine = _thumbnails(Path(clip), args.samples)
        best = (0.0, 0.0, "-")
        for name, theirs in refs.items():
            if not len(mine) or not len(theirs):
                continue
            corr = mine @ theirs.T / mine.shape[1]
            per_frame = corr.max(axis=1)
            best = max(best, (float(per_frame.max()), float((per_frame > 0.97).mean()), name))
        print(f"{Path(clip).name}: best {best[0]:.3f}, frames matched {best[1]:.2f} ({best[2]})")


def main() -> None:
    """Parse arguments and run one subcommand."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sheet")
    s.add_argument("video")
    s.add_argument("start", type=int)
    s.add_argument("stop", type=int)
    s.add_argument("--step", type=int, default=1)
    s.add_argument("--cols", type=int, default=6)
    s.add_argument("--width", type=int, default=240)
    s.add_argument("--line")
    s.add_argument("--crop", help="x1,y1,x2,y2 normalized region to show")
    s.add_argument("--out", default="sheet.png")
    s.set_defaults(func=sheet)
    m = sub.add_parser("motion")
    m.add_argument("video")
    m.add_argument("--line")
    m.add_argument("--band", type=float, default=0.08)
    m.add_argument("--min-pixels", type=int, default=20)
    m.add_argument("--gap", type=int, default=5)
    m.set_defaults(func=motion)
    t = sub.add_parser("slit")
    t.add_argument("video")
    t.add_argument("--line", required=True)
    t.add_argument("--inside", required=True, help="x,y normalized point on the inside")
    t.add_argument("--offset", type=float, default=0.04,
                   help="distance of the parallels, fraction of the larger frame side")
    t.add_argument("--start", type=int, default=0)
    t.add_argument("--stop", type=int)
    t.add_argument("--width", type=int, default=0, help="width of each strip (0: line length)")
    t.add_argument("--rows-per-frame", type=int, default=1, help="stretch time by this factor")
    t.add_argument("--tick", type=int, default=5, help="minor tick every N frames")
    t.add_argument("--split", type=int, default=900, help="rows per column (0: one column)")
    t.add_argument("--out", default="slit.png")
    t.set_defaults(func=slit)
    g = sub.add_parser("suggest")
    g.add_argument("video")
    g.add_argument("--line", required=True)
    g.add_argument("--inside", required=True)
    g.add_argument("--offset", type=float, default=0.04)
    g.add_argument("--start", type=int, default=0)
    g.add_argument("--stop", type=int)
    g.add_argument("--threshold", type=int, default=40)
    g.add_argument("--min-area", type=int, default=60)
    g.add_argument("--window", type=int, default=40)
    g.add_argument("--reference", choices=["feet", "centre"], default="feet")
    g.add_argument("--inside-above", action=argparse.BooleanOptionalAction, default=True,
                   help="the inside is the upper side of the line in the picture")
    g.set_defaults(func=suggest)
    c = sub.add_parser("check")
    c.add_argument("video")
    c.add_argument("candidates", nargs="+", help="FRAME:POS[:NOTE], POS 0..1 along the line")
    c.add_argument("--line", required=True)
    c.add_argument("--offsets", default="-16,-8,-4,0,4,8,16")
    c.add_argument("--crop-size", default="0.22,0.4", help="crop width,height (normalized)")
    c.add_argument("--width", type=int, default=160, help="width of each crop tile")
    c.add_argument("--out", default="check.png")
    c.set_defaults(func=check)
    d = sub.add_parser("similar")
    d.add_argument("clips", nargs="+")
    d.add_argument("--against", nargs="+", required=True, help="reference videos (kept back)")
    d.add_argument("--samples", type=int, default=60, help="frames compared per video")
    d.set_defaults(func=similar)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
