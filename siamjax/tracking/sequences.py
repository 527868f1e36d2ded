"""Tracking sequences on disk: OTB and GOT-10k folder layouts, read and written.

* **OTB** (Wu et al., OTB-2013/2015): ``SEQ/img/0001.jpg ...`` and ``SEQ/groundtruth_rect.txt``, one
  ``x,y,w,h`` line per frame.
* **GOT-10k**: ``SEQ/00000001.jpg ...`` and ``SEQ/groundtruth.txt`` beside the frames, optionally
  ``SEQ/absence.label`` (one 0/1 per frame, 1 = target absent).

Boxes are float32 ``[T, 4]`` ``x, y, w, h`` in pixels (top-left corner, see
:mod:`siamjax.tracking.boxes`), one row per frame; a NaN row means the target is absent or the frame
is unlabelled; a ground-truth line ``0,0,0,0`` (how OTB marks an unlabelled frame) reads as NaN too.
Frames are listed by file name (.jpg / .jpeg / .png, any case), numbers compared by value so that
``10000.jpg`` follows ``9999.jpg``. Every frame of a sequence must have the first frame's size
(:func:`check_frame_sizes` from the headers, :func:`iter_frames` as frames load; the tracker's boxes
would drift otherwise). Problems raise :class:`SequenceError` naming the file (and line).
"""
from __future__ import annotations

import dataclasses
import pathlib
import re
from typing import Iterable, Iterator

import numpy as np

__all__ = [
    "Sequence",
    "SequenceError",
    "check_frame_sizes",
    "format_boxes",
    "iter_frames",
    "list_frames",
    "load_frame",
    "parse_boxes",
    "read_got10k",
    "read_otb",
    "read_sequence",
    "read_sequences",
    "write_otb",
]

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
_SEP = re.compile(r"[\s,]+")
_OTB_HINT = "OTB layout: SEQ/img/0001.jpg ... and SEQ/groundtruth_rect.txt"
_GOT_HINT = "GOT-10k layout: SEQ/00000001.jpg ... and SEQ/groundtruth.txt"


class SequenceError(ValueError):
    """A sequence folder or annotation file that cannot be read; the message names the file (and line)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Sequence:
    """One annotated video.

    Attributes:
        name: the sequence folder's name.
        frames: paths of the frame images, in order (T).
        boxes: float32 [T, 4] ``x, y, w, h`` px; NaN rows where the target is absent or unlabelled.
    """

    name: str
    frames: tuple[str, ...]
    boxes: np.ndarray

    def __post_init__(self):
        boxes = np.asarray(self.boxes, np.float32)
        if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] != len(self.frames):
            raise SequenceError(f"sequence {self.name!r}: boxes must be [T, 4] with T = {len(self.frames)} "
                                f"frames, got shape {boxes.shape}")
        object.__setattr__(self, "frames", tuple(str(f) for f in self.frames))
        object.__setattr__(self, "boxes", boxes)

    def __len__(self) -> int:
        return len(self.frames)


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def list_frames(folder) -> list[pathlib.Path]:
    """Image files (.jpg/.jpeg/.png) directly in ``folder``, sorted by name (numbers by value)."""
    folder = pathlib.Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_SUFFIXES]
    return sorted(files, key=lambda p: _natural_key(p.name))


def parse_boxes(path) -> np.ndarray:
    """Read an annotation / tracker-output file -> float32 [N, 4] ``x, y, w, h`` px.

    One box per line, the 4 numbers separated by commas, tabs or spaces (mixed too). Blank lines at
    the end are ignored. A line holding a NaN (``NaN``, ``nan``) gives a NaN row (target absent).
    Raises :class:`SequenceError` (naming the file and line) for a line that does not hold 4 numbers,
    an infinite value, or a negative width / height."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SequenceError(f"box file not found: {path}") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    rows = []
    for n, line in enumerate(lines, start=1):
        tokens = [t for t in _SEP.split(line.strip(" \t,")) if t]
        if len(tokens) == 1 and tokens[0].lower() == "nan":  # a bare "NaN" line
            tokens = tokens * 4
        try:
            values = [float(t) for t in tokens]
        except ValueError:
            values = []
        if len(values) != 4:
            raise SequenceError(f"{path}:{n}: expected 4 numbers x,y,w,h separated by commas, tabs or "
                                f"spaces, got {line!r}")
        v = np.array(values, np.float64)
        if np.isnan(v).any():
            rows.append([np.nan] * 4)
            continue
        if np.isinf(v).any():
            raise SequenceError(f"{path}:{n}: infinite value in {line!r}")
        if v[2] < 0 or v[3] < 0:
            raise SequenceError(f"{path}:{n}: negative width or height in {line!r} (boxes are x,y,w,h)")
        rows.append(values)
    return np.array(rows, np.float32).reshape(-1, 4)


def format_boxes(boxes) -> str:
    """[N, 4] boxes -> text, one ``x,y,w,h`` line each (comma separated, 2 decimals, ``nan`` rows)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return "".join(",".join(f"{v:.2f}" for v in row) + "\n" for row in boxes)


def _check_dir(seq_dir) -> pathlib.Path:
    seq_dir = pathlib.Path(seq_dir)
    if not seq_dir.is_dir():
        raise SequenceError(f"sequence folder not found: {seq_dir}")
    return seq_dir


def _frames_in(folder: pathlib.Path, hint: str) -> list[pathlib.Path]:
    frames = list_frames(folder)
    if not frames:
        raise SequenceError(f"no frames (.jpg/.jpeg/.png) in {folder} ({hint})")
    return frames


def _zero_boxes_unlabelled(boxes: np.ndarray) -> np.ndarray:
    """Ground-truth rows ``0,0,0,0`` -> NaN (unlabelled, as the OTB toolkits treat them); in place."""
    boxes[(boxes == 0).all(axis=1)] = np.nan
    return boxes


def read_otb(seq_dir) -> Sequence:
    """Read an OTB sequence folder: ``SEQ/img/*.jpg`` and ``SEQ/groundtruth_rect.txt``.

    When ``groundtruth_rect.txt`` is missing but ``groundtruth_rect.1.txt`` exists (OTB's sequences with
    two annotated targets, e.g. Jogging, Skating2), the first target's file is used. The ground truth
    must hold exactly one line per frame; ``0,0,0,0`` lines are unlabelled frames (NaN rows). (OTB-100
    sequences whose annotation starts later than the first image, e.g. David or Tiger1, have to be trimmed
    to the annotated frames first.)"""
    seq_dir = _check_dir(seq_dir)
    img = seq_dir / "img"
    if not img.is_dir():
        raise SequenceError(f"no img/ folder in {seq_dir} ({_OTB_HINT})")
    frames = _frames_in(img, _OTB_HINT)
    gt = seq_dir / "groundtruth_rect.txt"
    if not gt.is_file() and (seq_dir / "groundtruth_rect.1.txt").is_file():
        gt = seq_dir / "groundtruth_rect.1.txt"
    if not gt.is_file():
        raise SequenceError(f"missing ground truth: {gt} not found (nor groundtruth_rect.1.txt) ({_OTB_HINT})")
    boxes = _zero_boxes_unlabelled(parse_boxes(gt))
    if len(boxes) != len(frames):
        fix = ("fewer boxes than frames: keep only the annotated frames in img/" if len(boxes) < len(frames)
               else "more boxes than frames: are frames missing from img/?")
        raise SequenceError(f"{gt}: {len(boxes)} boxes for {len(frames)} frames in {img} ({fix}; "
                            f"need one x,y,w,h line per frame)")
    return Sequence(seq_dir.name, tuple(map(str, frames)), boxes)


def _read_absence(path: pathlib.Path, n_frames: int) -> np.ndarray:
    """absence.label -> bool [T] (True = absent)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    flags = []
    for n, line in enumerate(lines, start=1):
        if line.strip() not in ("0", "1"):
            raise SequenceError(f"{path}:{n}: expected 0 or 1 (1 = target absent), got {line!r}")
        flags.append(line.strip() == "1")
    if len(flags) != n_frames:
        raise SequenceError(f"{path}: {len(flags)} lines for {n_frames} frames (need one 0/1 per frame)")
    return np.array(flags, bool)


def read_got10k(seq_dir) -> Sequence:
    """Read a GOT-10k sequence folder: ``SEQ/00000001.jpg ...`` and ``SEQ/groundtruth.txt``.

    Frames listed in ``absence.label`` as absent (1), and ``0,0,0,0`` lines, get NaN boxes. GOT-10k's test split ships only the
    first frame's box: a one-line ``groundtruth.txt`` is accepted and the later frames get NaN boxes.
    Otherwise the ground truth must hold exactly one line per frame."""
    seq_dir = _check_dir(seq_dir)
    frames = _frames_in(seq_dir, _GOT_HINT)
    gt = seq_dir / "groundtruth.txt"
    if not gt.is_file():
        raise SequenceError(f"missing ground truth: {gt} not found ({_GOT_HINT})")
    boxes = _zero_boxes_unlabelled(parse_boxes(gt))
    if len(boxes) == 1 and len(frames) > 1:  # test split: first frame only
        boxes = np.concatenate([boxes, np.full((len(frames) - 1, 4), np.nan, np.float32)])
    if len(boxes) != len(frames):
        which = "fewer" if len(boxes) < len(frames) else "more"
        raise SequenceError(f"{gt}: {len(boxes)} boxes for {len(frames)} frames in {seq_dir} ({which} boxes than "
                            f"frames; need one x,y,w,h line per frame, or only the first one as in the test split)")
    absence = seq_dir / "absence.label"
    if absence.is_file():
        boxes[_read_absence(absence, len(frames))] = np.nan
    return Sequence(seq_dir.name, tuple(map(str, frames)), boxes)


def _layout(folder: pathlib.Path) -> str | None:
    """"otb", "got10k" or None."""
    if (folder / "img").is_dir() or any(folder.glob("groundtruth_rect*.txt")):
        return "otb"
    if (folder / "groundtruth.txt").is_file():
        return "got10k"
    return None


def read_sequence(seq_dir) -> Sequence:
    """Read one sequence folder, OTB (``img/`` + ``groundtruth_rect*.txt``) or GOT-10k
    (``groundtruth.txt`` beside the frames), whichever it is."""
    seq_dir = _check_dir(seq_dir)
    layout = _layout(seq_dir)
    if layout == "otb":
        return read_otb(seq_dir)
    if layout == "got10k":
        return read_got10k(seq_dir)
    raise SequenceError(f"not a sequence folder: {seq_dir} (expected the {_OTB_HINT}, or the {_GOT_HINT})")


def read_sequences(root) -> list[Sequence]:
    """Every sequence folder directly under ``root``, sorted by name; files (``list.txt``) and folders
    that are not sequences are skipped. ``root`` may itself be one sequence folder."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise SequenceError(f"sequence root not found: {root}")
    if _layout(root):
        return [read_sequence(root)]
    dirs = sorted((p for p in root.iterdir() if p.is_dir() and _layout(p)), key=lambda p: _natural_key(p.name))
    if not dirs:
        raise SequenceError(f"no sequence folders under {root} (expected SEQ/ folders in the {_OTB_HINT}, "
                            f"or the {_GOT_HINT})")
    return [read_sequence(p) for p in dirs]


def write_otb(out_dir, frames: Iterable[np.ndarray], boxes) -> Sequence:
    """Write an OTB sequence folder and return it read back.

    Args:
        out_dir: the sequence folder (created); its ``img/`` must not hold frames already.
        frames: uint8 [H, W, 3] arrays, in order; written as ``img/0001.jpg ...`` (JPEG quality 95).
        boxes: [T, 4] ``x, y, w, h`` px, one per frame; written to ``groundtruth_rect.txt``
            (comma separated, 2 decimals, ``nan`` for absent).
    """
    from PIL import Image

    out = pathlib.Path(out_dir)
    img = out / "img"
    img.mkdir(parents=True, exist_ok=True)
    if list_frames(img):
        raise SequenceError(f"{img} already holds frames; write to an empty folder")
    boxes = np.asarray(boxes, np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise SequenceError(f"boxes must be [T, 4] (x, y, w, h), got shape {boxes.shape}")
    n = 0
    for n, frame in enumerate(frames, start=1):
        a = np.asarray(frame)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise SequenceError(f"frame {n}: expected uint8 [H, W, 3], got {a.dtype} {a.shape}")
        Image.fromarray(a).save(img / f"{n:04d}.jpg", quality=95)
    if n != len(boxes):
        raise SequenceError(f"{n} frames but {len(boxes)} boxes for {out}; need one box per frame")
    (out / "groundtruth_rect.txt").write_text(format_boxes(boxes))
    return read_otb(out)


def load_frame(path) -> np.ndarray:
    """Image file -> uint8 [H, W, 3] RGB (grey, palette and RGBA images converted)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), np.uint8)
    except FileNotFoundError:
        raise SequenceError(f"frame not found: {path}") from None
    except UnidentifiedImageError:
        raise SequenceError(f"not an image file: {path}") from None


def _size_error(seq: Sequence, index: int, size: tuple[int, int], first: tuple[int, int]) -> SequenceError:
    return SequenceError(f"sequence {seq.name!r}: frame {seq.frames[index]} is {size[0]}x{size[1]} px but the "
                         f"first frame {seq.frames[0]} is {first[0]}x{first[1]} px; every frame of a sequence must "
                         f"have one size (the tracker's boxes would drift): resize or remove that frame")


def check_frame_sizes(seq: Sequence) -> tuple[int, int]:
    """(width, height) shared by every frame of ``seq``, read from the image headers (nothing decoded).

    Raises :class:`SequenceError` naming the sequence, the first frame whose size differs from frame 0's
    and both sizes (or a frame that is missing or not an image)."""
    from PIL import Image, UnidentifiedImageError

    first = None
    for i, path in enumerate(seq.frames):
        try:
            with Image.open(path) as im:
                size = im.size
        except FileNotFoundError:
            raise SequenceError(f"frame not found: {path}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise SequenceError(f"not an image file: {path}") from None
        if first is None:
            first = size
        elif size != first:
            raise _size_error(seq, i, size, first)
    return first


def iter_frames(seq: Sequence, first: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """The frames of ``seq`` loaded one at a time (:func:`load_frame`): uint8 [H, W, 3] each.

    ``first``: frame 0 already loaded (not read again). Raises :class:`SequenceError` naming the
    sequence, the frame file and both sizes when a frame's size differs from frame 0's."""
    shape = None
    for i, path in enumerate(seq.frames):
        frame = first if i == 0 and first is not None else load_frame(path)
        if shape is None:
            shape = frame.shape[:2]
        elif frame.shape[:2] != shape:
            raise _size_error(seq, i, (frame.shape[1], frame.shape[0]), (shape[1], shape[0]))
        yield frame
