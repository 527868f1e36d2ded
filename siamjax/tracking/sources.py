"""Where SiamFC's training pairs and validation sequences come from (the :class:`pairs.SequenceSource`
protocol): generated sequences drawn on demand from the shared images, or OTB / GOT-10k folders."""
from __future__ import annotations

import functools

import numpy as np

from siamjax.tracking.sequences import Sequence, SequenceError, load_frame, read_sequences


class FolderSequences:
    """Annotated sequences on disk (:func:`siamjax.tracking.sequences.read_sequences`); frames are
    decoded when a pair needs them (the last ``cache_frames`` kept)."""

    def __init__(self, sequences: list[Sequence], cache_frames: int = 512):
        usable = [s for s in sequences if np.isfinite(s.boxes).all(1).sum() >= 2]
        if not usable:
            raise SequenceError("no sequence has two or more annotated frames to make training pairs from")
        self.sequences = usable
        self._load = functools.lru_cache(maxsize=cache_frames)(load_frame)

    def __len__(self) -> int:
        return len(self.sequences)

    def length(self, i: int) -> int:
        return len(self.sequences[i])

    def frame(self, i: int, t: int) -> np.ndarray:
        return self._load(self.sequences[i].frames[t])

    def box(self, i: int, t: int) -> np.ndarray:
        return self.sequences[i].boxes[t]


def folder_validation(root: str, count: int, frames: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The first ``count`` sequences under ``root``, their first ``frames`` frames decoded:
    ``(name, uint8 [T, H, W, 3], boxes [T, 4])``; each must start with an annotated frame."""
    out = []
    for seq in read_sequences(root)[:count]:
        if not np.isfinite(seq.boxes[0]).all():
            raise SequenceError(f"validation sequence {seq.name}: its first frame has no box to start from")
        t = min(len(seq), frames)
        out.append((seq.name, np.stack([load_frame(p) for p in seq.frames[:t]]), seq.boxes[:t]))
    return out


def train_and_val_sequences(cfg):
    """(training :class:`SequenceSource`, validation sequences) named by the config."""
    if cfg.data == "folder":
        if not cfg.val_data_dir:
            raise ValueError("config.data=folder needs config.val_data_dir: a folder of validation sequences "
                             "(never the ones you will test on)")
        return (FolderSequences(read_sequences(cfg.data_dir)),
                folder_validation(cfg.val_data_dir, cfg.val_sequences, cfg.val_frames))
    return synthetic_train_and_val(cfg)


class SyntheticSequences:
    """``count`` generated sequences (:mod:`siamjax.tracking.synthetic`), sequence i from ``(seed, i)``;
    a frame is drawn when a pair needs it. Specs (about 50 ms and 0.3 MB each) are made on first use
    and kept, up to ``cache_specs`` of them."""

    def __init__(self, sources, seed: int, count: int, frames: int, frame_size: tuple[int, int],
                 cache_specs: int = 2048):
        from siamjax.tracking import synthetic

        if count < 1 or frames < 2:
            raise ValueError(f"need at least 1 synthetic sequence of 2 or more frames, got {count} x {frames}")
        self._render = synthetic.render
        self._spec = functools.lru_cache(maxsize=cache_specs)(
            lambda i: synthetic.make_spec(sources, seed, i, num_frames=frames, frame_size=tuple(frame_size)))
        self.count, self.frames = count, frames

    def __len__(self) -> int:
        return self.count

    def length(self, i: int) -> int:
        return self.frames

    def frame(self, i: int, t: int) -> np.ndarray:
        return self._render(self._spec(i), t)

    def box(self, i: int, t: int) -> np.ndarray:
        return self._spec(i).boxes[t]


def synthetic_train_and_val(cfg):
    """Training sequences from seed ``cfg.seed`` and validation sequences from seed ``cfg.seed + 1``,
    both from the training material (``split="train"``) of ``cfg.data_dir``; the test material stays
    unseen until ``eval.py track``."""
    from siamjax.tracking import synthetic

    sources = synthetic.load_sources(cfg.data_dir, "train")
    window = cfg.get("sequence_window", 0)
    cache = 2 * window if 0 < window < cfg.train_sequences else min(cfg.train_sequences, 2048)
    train = SyntheticSequences(sources, cfg.seed, cfg.train_sequences, cfg.frames, tuple(cfg.frame_size),
                               cache_specs=cache)
    val = []
    for i in range(cfg.val_sequences):
        frames, boxes = synthetic.generate(sources, cfg.seed + 1, i, cfg.val_frames, tuple(cfg.frame_size))
        val.append((f"val_{i:03d}", frames, boxes))
    return train, val
