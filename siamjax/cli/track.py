"""Track one object through one sequence with a SiamFC checkpoint.

::

  python -m siamjax.cli.track --checkpoint DIR --sequence SEQ_DIR --out boxes.txt [--init x,y,w,h]

SEQ_DIR is an OTB (``img/`` + ``groundtruth_rect.txt``) or GOT-10k (frames + ``groundtruth.txt``)
sequence folder; the first ground-truth box starts the tracker unless ``--init`` gives it. With
``--init``, a folder of frames without ground truth (frames directly in it, or in ``img/``) works too.
Writes one ``x,y,w,h`` line per frame (px, top-left corner) to ``--out`` and prints the speed, and,
when the sequence has ground truth beyond the first frame, OTB's success AUC and precision@20 px.
Errors in the input (a missing folder, frames of different sizes, a bad ``--init``, a checkpoint that is
not SiamFC's) print one line and exit with status 1; ``--traceback`` shows the full trace.
"""
from __future__ import annotations

import argparse
import math
import pathlib
import sys

import numpy as np

from siamjax.cli.argparse_flags import add_bool
from siamjax.cli.errors import status_on_user_error


def parse_box(text: str) -> np.ndarray:
    """``"x,y,w,h"`` (commas or spaces) -> float64 [4]; ValueError unless 4 finite numbers with w, h > 0."""
    parts = [p for p in text.replace(",", " ").split() if p]
    try:
        box = np.array([float(p) for p in parts], np.float64)
    except ValueError:
        box = np.zeros(0)
    if box.shape != (4,) or not np.all(np.isfinite(box)) or box[2] <= 0 or box[3] <= 0:
        raise ValueError(f"--init must be x,y,w,h: four numbers, width and height > 0 (px), got {text!r}")
    return box


def open_sequence(seq_dir, need_gt: bool):
    """The :class:`~siamjax.tracking.sequences.Sequence` in ``seq_dir``; when ``need_gt`` is False a
    folder of frames (in it or in its ``img/``) without ground truth gives one with NaN boxes."""
    from siamjax.tracking import sequences as S

    try:
        return S.read_sequence(seq_dir)
    except S.SequenceError:
        seq_dir = pathlib.Path(seq_dir)
        if need_gt or not seq_dir.is_dir():
            raise
        for folder in (seq_dir / "img", seq_dir):
            frames = S.list_frames(folder) if folder.is_dir() else []
            if frames:
                return S.Sequence(seq_dir.name, tuple(map(str, frames)), np.full((len(frames), 4), np.nan))
        raise


def check_box_in_frame(box, frame_shape) -> None:
    """ValueError unless ``box`` (x, y, w, h px) overlaps the ``[H, W, ...]`` frame."""
    h, w = frame_shape[:2]
    x, y, bw, bh = box
    if x >= w or y >= h or x + bw <= 0 or y + bh <= 0:
        raise ValueError(f"the initial box {', '.join(f'{v:g}' for v in box)} (x,y,w,h) lies outside the "
                         f"{w}x{h} frame")


def checkpoint_settings(net):
    """The tracker settings stored with the checkpoint (its config's ``tracker``), else SiamFC's defaults."""
    from siamjax.tracking.tracker import TrackerSettings

    return TrackerSettings.from_dict(dict((net.meta.get("config") or {}).get("tracker") or {}))


def run(args) -> int:
    from tqdm.auto import tqdm

    from siamjax.tracking import otb_metrics as M
    from siamjax.tracking.net import load_siamfc
    from siamjax.tracking.sequences import check_frame_sizes, iter_frames, load_frame
    from siamjax.tracking.tracker import SiamFCTracker

    init = parse_box(args.init) if args.init is not None else None
    seq = open_sequence(args.sequence, need_gt=init is None)
    if init is None:
        init = seq.boxes[0].astype(np.float64)
        if np.isnan(init).any():
            raise ValueError(f"{args.sequence}: the first frame has no ground-truth box; give --init x,y,w,h")
    check_frame_sizes(seq)  # all frames one size, from the headers, before any work
    first = load_frame(seq.frames[0])
    check_box_in_frame(init, first.shape)
    net = load_siamfc(args.checkpoint)
    frames = iter_frames(seq, first=first)  # checks each frame's size again as it loads
    bar = tqdm(frames, total=len(seq), desc=seq.name, unit="frame", disable=not args.progress)
    boxes, spf = SiamFCTracker(net, checkpoint_settings(net)).track(bar, init)
    M.write_boxes(args.out, boxes)
    fps = 1.0 / spf if spf > 0 and math.isfinite(spf) else float("nan")
    print(f"{seq.name}: {len(boxes)} frames, {fps:.1f} frames/s (tracker only, first frame excluded) "
          f"-> {args.out}")
    labelled = ~np.isnan(seq.boxes).any(axis=1)
    if labelled[1:].any():
        r = M.evaluate_sequence(boxes, seq.boxes)
        print(f"success AUC {r['success_auc']:.3f}, precision@20px {r['precision_20']:.3f} "
              f"({r['frames']} labelled frames)")
    sys.stdout.flush()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m siamjax.cli.track", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="SiamFC training workdir, manager folder or step folder")
    p.add_argument("--sequence", required=True, help="OTB or GOT-10k sequence folder (or a folder of frames "
                                                     "with --init)")
    p.add_argument("--out", required=True, help="output text file: one x,y,w,h line per frame")
    p.add_argument("--init", help="initial box x,y,w,h px in the first frame (default: its ground truth)")
    add_bool(p, "progress", True, "show progress bars", aliases=("--no_progress",))
    p.add_argument("--traceback", action="store_true", help="on an error, show the full traceback")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run (``argv`` without the program name); user errors -> one line on stderr, status 1."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return status_on_user_error(lambda: run(args), args.traceback)


if __name__ == "__main__":
    sys.exit(main())
