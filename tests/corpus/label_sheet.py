"""Labelling helper for the doorway corpus: contact sheets and frame stepping.

Usage:
    python tests/corpus/label_sheet.py sheet VIDEO START STOP [--step N] [--cols C] [--width W]
        [--line x1,y1,x2,y2] [--crop x1,y1,x2,y2] [--out sheet.png]
    python tests/corpus/label_sheet.py motion VIDEO [--line x1,y1,x2,y2] [--band 0.08]

`sheet` tiles frames START..STOP (every N-th, decode order, every frame decoded
because OpenCV's seeking and frame counts are wrong for some containers), each
stamped with its frame number, with the threshold line (normalized
coordinates) drawn, so a labeller can step through a crossing frame by frame.
`motion` prints the frame ranges where the frame difference is large near the
line: the places to look at with `sheet`.  A tool for people; nothing in the
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
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
