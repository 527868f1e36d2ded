"""``eval.py track``: OTB one-pass evaluation of a SiamFC checkpoint over a folder of sequences.

::

  python eval.py track --checkpoint DIR --sequences ROOT --out_dir OUT [--max_sequences N]
                       [--strip_frames 8] [--compare_random]

Tracks every sequence under ROOT (OTB or GOT-10k folders, see
:func:`siamjax.tracking.sequences.read_sequences`) from its first ground-truth box and writes

* ``OUT/boxes/NAME.txt``: one ``x,y,w,h`` line per frame (``OUT/boxes_random/`` for the baseline);
* ``OUT/results.json``: success AUC, precision@20 px and frames per second, overall (mean over
  sequences, OTB's headline) and per sequence, with the curves and the tracker settings;
* ``OUT/success_plot.png``, ``OUT/precision_plot.png``: the checkpoint's curves, and with
  ``--compare_random`` those of the same architecture untrained (``net.build`` from the checkpoint's
  widths and geometry), a baseline that shows what training bought;
* ``OUT/strip.png``: ``--strip_frames`` evenly spaced frames of the first sequence, ground truth in
  green and the tracker in red.

A sequence whose frames are not all one size is refused (one line naming the frame, status 1) before
any tracking. Sequences without a box in the first frame, or without one after it (GOT-10k's test split),
are skipped (named); ``python -m siamjax.cli.track`` tracks such a sequence on its own. Speed is the
tracker's alone (frame reading excluded, the first frame of each sequence excluded).
"""
from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

from siamjax.cli.argparse_flags import add_bool
from siamjax.cli.errors import status_on_user_error

TRACKER_NAME = "SiamFC"
RANDOM_NAME = "untrained"


def run_tracker(net, settings, sequences, box_dir: pathlib.Path, progress: bool, label: str) -> dict:
    """Track every sequence; write ``box_dir/NAME.txt``. -> ``{name: (pred [T, 4], seconds, updates)}``."""
    from tqdm.auto import tqdm

    from siamjax.tracking import otb_metrics as M
    from siamjax.tracking.sequences import iter_frames
    from siamjax.tracking.tracker import SiamFCTracker

    tracker = SiamFCTracker(net, settings)
    out = {}
    for seq in sequences:
        frames = tqdm(iter_frames(seq), total=len(seq), desc=f"{label} {seq.name}", unit="frame",
                      disable=not progress, leave=False)
        pred, spf = tracker.track(frames, seq.boxes[0])
        M.write_boxes(box_dir / f"{seq.name}.txt", pred)
        out[seq.name] = (pred, spf * (len(seq) - 1) if len(seq) > 1 else 0.0, len(seq) - 1)
    return out


def summarise(runs: dict, sequences) -> dict:
    """OTB numbers and speed of one tracker's runs -> a JSON-ready dict (overall + per sequence)."""
    from siamjax.tracking import otb_metrics as M

    res = M.evaluate_sequences([(s.name, runs[s.name][0], s.boxes) for s in sequences])

    def fps(seconds, updates):
        return float(updates / seconds) if seconds > 0 else None

    per = {}
    for s in sequences:
        r = res["sequences"][s.name]
        per[s.name] = {"success_auc": r["success_auc"], "precision_20": r["precision_20"],
                       "fps": fps(*runs[s.name][1:]), "frames": len(s), "labelled_frames": r["frames"]}
    seconds = sum(v[1] for v in runs.values())
    updates = sum(v[2] for v in runs.values())
    return {"success_auc": res["success_auc"], "precision_20": res["precision_20"], "fps": fps(seconds, updates),
            "n_sequences": res["n_sequences"], "frames": int(sum(len(s) for s in sequences)),
            "labelled_frames": res["frames"],
            "success_curve": res["success_curve"].tolist(), "precision_curve": res["precision_curve"].tolist(),
            "pooled": {"success_auc": res["pooled"]["success_auc"], "precision_20": res["pooled"]["precision_20"]},
            "sequences": per}


def write_strip(seq, pred: np.ndarray, n: int, path: pathlib.Path) -> pathlib.Path:
    """``n`` evenly spaced frames of ``seq`` (first and last included), ground truth and ``pred``."""
    from siamjax.tracking.plots import frame_strip
    from siamjax.tracking.sequences import load_frame

    idx = np.unique(np.linspace(0, len(seq) - 1, max(1, min(n, len(seq)))).round().astype(int))
    frames = [load_frame(seq.frames[i]) for i in idx]
    return frame_strip(frames, seq.boxes[idx], pred[idx], path, columns=min(4, len(idx)), indices=idx + 1)


def _fmt(v, spec):
    return "-" if v is None else format(v, spec)


def print_table(summaries: dict) -> None:
    """One row per sequence and tracker, then the overall rows."""
    names = list(next(iter(summaries.values()))["sequences"])
    width = max([len("overall (mean)")] + [len(n) for n in names])
    print(f"{'sequence':<{width}}  {'tracker':<10} {'frames':>6} {'AUC':>6} {'P@20':>6} {'fps':>7}")
    for name in names + ["overall (mean)"]:
        for tracker, s in summaries.items():
            r = s["sequences"][name] if name in s["sequences"] else s
            print(f"{name:<{width}}  {tracker:<10} {r['frames']:>6} {r['success_auc']:>6.3f} "
                  f"{r['precision_20']:>6.3f} {_fmt(r['fps'], '>7.1f')}")


def run(args) -> int:
    from siamjax.cli.track import checkpoint_settings
    from siamjax.tracking import otb_metrics as M
    from siamjax.tracking import plots
    from siamjax.tracking.net import build, load_siamfc
    from siamjax.tracking.sequences import check_frame_sizes, read_sequences

    if args.max_sequences is not None and args.max_sequences < 1:
        raise ValueError(f"--max_sequences must be >= 1, got {args.max_sequences}")
    if args.strip_frames < 0:
        raise ValueError(f"--strip_frames must be >= 0, got {args.strip_frames}")
    net = load_siamfc(args.checkpoint)
    settings = checkpoint_settings(net)
    sequences = read_sequences(args.sequences)
    labelled = {s.name: ~np.isnan(s.boxes).any(axis=1) for s in sequences}
    skipped = [s.name for s in sequences if not (labelled[s.name][0] and labelled[s.name][1:].any())]
    if skipped:
        print(f"skipped (no box in the first frame, or none after it to score against): {', '.join(skipped)}")
    sequences = [s for s in sequences if s.name not in skipped][:args.max_sequences]
    if not sequences:
        raise ValueError(f"no sequence under {args.sequences} has ground truth in its first frame and a later one")
    for seq in sequences:  # every frame of a sequence one size (headers only), before any tracking
        check_frame_sizes(seq)
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"checkpoint: {net.path} (step {net.meta.get('step')}); {len(sequences)} sequences, "
          f"{sum(len(s) for s in sequences)} frames")

    trackers = {TRACKER_NAME: (net, out / "boxes")}
    if args.compare_random:
        baseline = build(widths=tuple(net.module.widths), geometry=net.geometry, seed=args.seed)
        trackers[RANDOM_NAME] = (baseline, out / "boxes_random")
    summaries = {}
    for label, (tracker_net, box_dir) in trackers.items():
        runs = run_tracker(tracker_net, settings, sequences, box_dir, args.progress, label)
        summaries[label] = summarise(runs, sequences)
        if label == TRACKER_NAME:
            first_pred = runs[sequences[0].name][0]

    results = {"checkpoint": str(net.path), "step": net.meta.get("step"), "sequences_root": str(args.sequences),
               "settings": settings.to_dict(), "skipped": skipped,
               "success_thresholds": np.round(M.SUCCESS_THRESHOLDS, 4).tolist(),
               "precision_thresholds": M.PRECISION_THRESHOLDS.tolist(),
               **summaries[TRACKER_NAME]}
    if args.compare_random:
        results["random"] = {"seed": args.seed, **summaries[RANDOM_NAME]}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plots.plot_success({k: (M.SUCCESS_THRESHOLDS, v["success_curve"]) for k, v in summaries.items()},
                       out / "success_plot.png")
    plots.plot_precision({k: (M.PRECISION_THRESHOLDS, v["precision_curve"]) for k, v in summaries.items()},
                         out / "precision_plot.png")
    if args.strip_frames:
        write_strip(sequences[0], first_pred, args.strip_frames, out / "strip.png")
    print_table(summaries)
    print(f"wrote {out / 'results.json'}, success_plot.png, precision_plot.png"
          + (", strip.png" if args.strip_frames else "") + f" and boxes/ in {out}")
    sys.stdout.flush()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="eval.py track", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="SiamFC training workdir, manager folder or step folder")
    p.add_argument("--sequences", required=True, help="folder of OTB / GOT-10k sequence folders (or one sequence)")
    p.add_argument("--out_dir", required=True, help="where boxes/, results.json and the plots go")
    p.add_argument("--max_sequences", type=int, help="only the first N sequences (by name)")
    p.add_argument("--strip_frames", type=int, default=8, help="frames in strip.png (0: no strip)")
    p.add_argument("--compare_random", action="store_true",
                   help="also track with the same architecture untrained (baseline curve)")
    p.add_argument("--seed", type=int, default=0, help="initialisation seed of the --compare_random net")
    add_bool(p, "progress", True, "show progress bars", aliases=("--no_progress",))
    p.add_argument("--traceback", action="store_true", help="on an error, show the full traceback")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``eval.py track`` (``argv`` with or without the leading ``track``); user errors -> one line on
    stderr, status 1."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "track":
        argv = argv[1:]
    args = build_parser().parse_args(argv)
    return status_on_user_error(lambda: run(args), args.traceback)
