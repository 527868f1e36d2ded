"""Synthetic tracking sequences built from the real images in ``shared/data`` (no tracking benchmark can be
downloaded here): a coloured face, character, digit or signature moves smoothly over a cluttered collage
of other images, among look-alike distractors, and is now and then partly covered by passing occluders.

Everything random about sequence ``index`` of ``seed`` is drawn once by :func:`make_spec` from
``np.random.default_rng((seed, index))`` into a :class:`SequenceSpec`; :func:`render` then draws any one
frame from the spec alone (a few ms), so training can take two frames of a random sequence without
generating the rest, and ``render(spec, t)`` is the same whether or not frames ``0..t-1`` were drawn.
``spec.boxes[t]`` (x, y, w, h, top-left corner, pixels) is the tight box of the whole target (occluded
parts included), computed from the very transform used to paste it. :func:`load_sources` gives disjoint
train / test pools (:mod:`siamjax.tracking.synthetic_sources`). Here: :func:`make_spec`, :func:`generate`,
:func:`preview` and the command line; drawing is in :mod:`siamjax.tracking.synthetic_render`, the random
pieces (motion, background, occluders) in :mod:`siamjax.tracking.synthetic_scene`.

Write sequences in the OTB layout (``DIR/synth_0000/img/0001.jpg``, ``groundtruth_rect.txt``)::

    python -m siamjax.tracking.synthetic --data ../shared/data --split test --num 20 --frames 100 --seed 1 \\
        --out DIR --preview DIR/preview.png
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import sys

import numpy as np

from siamjax.tracking.sequences import write_otb
from siamjax.tracking.synthetic_render import EXPOSURE, NOISE_PAD, SequenceSpec, Sprite, render
from siamjax.tracking.synthetic_scene import (MAX_OCCLUDED_FRAMES, MIN_SIZE, Picker, freeze, make_background, occluder,
                                              scale_range, sprite_boxes, trajectory)
from siamjax.tracking.synthetic_sources import KINDS, Sources, hull_points, load_sources, object_sprite, with_shadow

__all__ = ["Sources", "load_sources", "Sprite", "SequenceSpec", "make_spec", "render", "generate", "preview", "main",
           "KINDS", "EXPOSURE", "MAX_OCCLUDED_FRAMES", "MIN_SIZE", "PAN"]

PAN = 16  # the background is this many px larger than the frame on every side (camera pan)


def make_spec(sources: Sources, seed: int, index: int, num_frames: int = 100,
              frame_size: tuple[int, int] = (240, 320)) -> SequenceSpec:
    """Draw every random choice of sequence ``index`` of ``seed`` (only from
    ``np.random.default_rng((seed, index))``): target image, looks and trajectory (start size 24..64 px,
    scale x0.6..x1.6, speed <= 8 px / frame, at least ~80% in the frame), 2-5 distractors (at least one
    of the target's kind), 0-2 occluders, background, camera pan, brightness and noise."""
    T = int(num_frames)
    H, W = (int(frame_size[0]), int(frame_size[1]))
    if T < 1 or H < 32 or W < 32:
        raise ValueError(f"need num_frames >= 1 and a frame of at least 32 x 32 px, got {T}, {(H, W)}")
    rng = np.random.default_rng((int(seed), int(index)))
    unit = min(1.0, min(H, W) / 240.0)
    picker = Picker(rng, sources)
    light, dist = rng.uniform(0, 2 * np.pi), rng.uniform(1.5, 6.0) * unit
    shadow = ((float(dist * np.cos(light)), float(dist * np.sin(light)), float(rng.uniform(0.8, 2.5) * unit),
               float(rng.uniform(0.3, 0.6))) if rng.random() < 0.6 else None)

    def shaded(rgba, pts=None):  # the sprite over its drop shadow, and its hull points on the padded canvas
        pts = hull_points(rgba[..., 3]) if pts is None else pts
        if shadow is None:
            return rgba, pts
        out, pad = with_shadow(rgba, *shadow)
        return out, pts + pad

    kind = picker.kind()
    ti = picker.take(kind)
    picker.reserved[kind] = ti
    size0 = rng.uniform(24, 64) * unit
    colour_seed = int(rng.integers(2 ** 63))
    rgba, pts = shaded(object_sprite(rng, sources, kind, ti, size0, colour_rng=np.random.default_rng(colour_seed)))
    wh = (rgba.shape[1], rgba.shape[0])
    centers, scales, angles = trajectory(rng, T, (H, W), wh, rng.uniform(1.0, 8.0) * unit, 0.9,
                                         scale_range(wh, size0, (H, W), unit), np.deg2rad(rng.uniform(0, 10)))
    target = Sprite(rgba, centers, scales, angles, kind, sources.source_id(kind, ti))
    boxes = sprite_boxes(pts, wh, centers, scales, angles)

    distractors = []
    n_distract = int(rng.integers(2, 6))
    for j in range(n_distract):
        dkind = kind if j == 0 or rng.random() < 0.3 else picker.kind()
        same_palette = dkind == kind and rng.random() < 0.4
        di = picker.take(dkind)
        d_rgba, _ = shaded(object_sprite(rng, sources, dkind, di, size0 * rng.uniform(0.7, 1.35),
                                         colour_rng=np.random.default_rng(colour_seed) if same_palette else None))
        dwh = (d_rgba.shape[1], d_rgba.shape[0])
        d = trajectory(rng, T, (H, W), dwh, rng.uniform(0.5, 6.0) * unit, 0.4, scale_range(dwh, size0, (H, W), unit),
                       np.deg2rad(rng.uniform(0, 15)))
        distractors.append(Sprite(d_rgba, *d, dkind, sources.source_id(dkind, di)))

    occluders = []
    for _ in range(int(rng.choice([0, 1, 1, 1, 2, 2]))):
        o = occluder(rng, sources, picker, boxes, (H, W), unit)
        if o is not None:
            occluders.append(dataclasses.replace(o, rgba=shaded(o.rgba, np.zeros((1, 2), np.float32))[0]))

    background = make_background(rng, sources, picker, (H + 2 * PAN, W + 2 * PAN), unit)
    pan = np.empty((T, 2), np.int32)
    p, v = rng.uniform(0, 2 * PAN, 2), rng.normal(0, 0.4, 2) * (rng.random() < 0.7)
    for t in range(T):
        pan[t] = np.rint(p)
        v = np.clip(0.9 * v + rng.normal(0, 0.1, 2) * (v != 0), -1.5, 1.5)
        p = p + v
        v = np.where((p < 0) | (p > 2 * PAN), -v, v)
        p = np.clip(p, 0, 2 * PAN)

    tt = np.arange(T, dtype=np.float32)
    log_gain = rng.uniform(0, 0.2) * np.sin(2 * np.pi * tt / rng.uniform(30, 200) + rng.uniform(0, 2 * np.pi))
    if rng.random() < 0.25:  # a light switched on or off: a step over a few frames
        step = np.clip((tt - rng.uniform(0, T)) / 4, 0, 1)
        log_gain = log_gain + rng.choice([-1, 1]) * rng.uniform(0.15, 0.35) * step
    gains = np.exp(log_gain).astype(np.float32)
    biases = rng.uniform(-12, 12) * np.sin(2 * np.pi * tt / rng.uniform(40, 200) + rng.uniform(0, 2 * np.pi))
    biases = biases.astype(np.float32)
    noise_sigma = float(rng.uniform(0, 7))
    noise_offsets = rng.integers(0, 2 * NOISE_PAD, (T, 2)).astype(np.int32)
    white_balance = np.exp(rng.normal(0, 0.07, 3)).astype(np.float32)

    for s in [target, *distractors, *occluders]:
        freeze(s.rgba, s.centers, s.scales, s.angles)
    freeze(boxes, background, pan, gains, biases, noise_offsets, white_balance)
    ids = tuple(dict.fromkeys([target.source_id] + picker.ids))
    return SequenceSpec(int(seed), int(index), (H, W), T, kind, boxes, target, tuple(distractors), tuple(occluders),
                        background, pan, gains, biases, noise_sigma, int(rng.integers(2 ** 63)), noise_offsets,
                        white_balance, ids, shadow)


def generate(sources: Sources, seed: int, index: int, num_frames: int = 100,
             frame_size: tuple[int, int] = (240, 320)) -> tuple[np.ndarray, np.ndarray]:
    """(frames uint8 [T, H, W, 3], boxes float32 [T, 4] x, y, w, h) of sequence ``index`` of ``seed``."""
    spec = make_spec(sources, seed, index, num_frames, frame_size)
    frames = np.stack([render(spec, t) for t in range(spec.num_frames)])
    return frames, np.array(spec.boxes, np.float32)


def preview(specs, path, columns: int = 6) -> pathlib.Path:
    """PNG grid: one row per spec, ``columns`` frames spread over it, the target's box drawn in green
    (:func:`siamjax.tracking.plots.frame_strip`, the tiles numbered by frame)."""
    from siamjax.tracking.plots import frame_strip

    frames, boxes, numbers = [], [], []
    for spec in specs:
        for t in np.linspace(0, spec.num_frames - 1, columns).round().astype(int):
            frames.append(render(spec, int(t)))
            boxes.append(spec.boxes[t])
            numbers.append(int(t))
    return frame_strip(frames, np.stack(boxes), None, path, columns=columns, indices=numbers)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m siamjax.tracking.synthetic", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("SIAMJAX_DATA", "../shared/data"),
                    help="folder holding omniglot/, att_faces/, mnist_test/, signatures_sigcomp2011_dutch/")
    ap.add_argument("--split", choices=("train", "test"), default="test")
    ap.add_argument("--num", type=int, default=20, help="sequences to write")
    ap.add_argument("--start", type=int, default=0, help="index of the first sequence")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"), help="frame size")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="write DIR/synth_NNNN/{img/0001.jpg..., groundtruth_rect.txt}")
    ap.add_argument("--preview", help="write a PNG grid of a few frames of the first sequences, boxes in green")
    ap.add_argument("--preview_rows", type=int, default=4)
    args = ap.parse_args(argv)
    if not args.out and not args.preview:
        ap.error("nothing to do: give --out DIR and / or --preview PATH.png")
    if args.num < 1 or args.frames < 1:
        ap.error("--num and --frames must be >= 1")
    try:
        sources = load_sources(args.data, args.split)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    indices = range(args.start, args.start + args.num)
    shown = {i: None for i in list(indices)[:args.preview_rows]} if args.preview else {}

    def spec_of(i):
        spec = shown.get(i) or make_spec(sources, args.seed, i, args.frames, tuple(args.size))
        if i in shown:
            shown[i] = spec
        return spec

    if args.out:
        from tqdm import tqdm

        out = pathlib.Path(args.out)
        with tqdm(total=args.num * args.frames, unit="frame", desc=f"synthetic {args.split}") as bar:
            for i in indices:
                spec = spec_of(i)

                def frames(spec=spec):
                    for t in range(spec.num_frames):
                        yield render(spec, t)
                        bar.update(1)

                write_otb(out / f"synth_{i:04d}", frames(), spec.boxes)
        print(f"wrote {args.num} sequences of {args.frames} frames to {out}")
    if args.preview:
        path = preview([spec_of(i) for i in shown], args.preview)
        print(f"preview: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
