"""Images decoded on demand: an array-like ``uint8 [N, H, W, C]`` backed by a per-item loader.

Large datasets (an image folder, a zip, a TFDS data source) are not decoded whole into memory:
:class:`LazyImages` decodes the rows a batch asks for, keeps at most ``cache_items`` decoded
images in a least-recently-used cache, and decodes the misses of one request on a small thread
pool (PIL releases the GIL while it decodes). Indexing returns a real NumPy array, so the batch
code (``images[idx]``) treats a lazy set and an in-memory array alike.
"""
from __future__ import annotations

import collections
import concurrent.futures
import threading
from typing import Callable, Sequence

import numpy as np

__all__ = ["LazyImages", "is_lazy"]

# Decoded images kept by default (28x28: ~3 MB; 105x105: ~45 MB).
DEFAULT_CACHE_ITEMS = 4096


class _Store:
    """What views of one dataset share: the loader, the LRU cache, the decode pool."""

    def __init__(self, load: Callable[[int], np.ndarray], shape: tuple[int, int, int], cache_items: int,
                 threads: int):
        self.load = load
        self.shape = shape
        self.cache_items = max(0, int(cache_items))
        self.cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        self.lock = threading.Lock()
        self.threads = max(1, int(threads))
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.decoded = 0  # images decoded so far (cache misses), for throughput reports

    def _load_checked(self, i: int) -> np.ndarray:
        arr = np.asarray(self.load(i))
        if arr.shape != self.shape or arr.dtype != np.uint8:
            raise ValueError(f"lazy image loader returned {arr.dtype} {arr.shape} for item {i}, "
                             f"expected uint8 {self.shape}")
        return arr

    def get(self, items: np.ndarray) -> np.ndarray:
        out = np.empty((len(items), *self.shape), np.uint8)
        missing: dict[int, list[int]] = {}
        with self.lock:
            for row, i in enumerate(items.tolist()):
                hit = self.cache.get(i)
                if hit is not None:
                    self.cache.move_to_end(i)
                    out[row] = hit
                else:
                    missing.setdefault(i, []).append(row)
        if missing:
            keys = list(missing)
            if len(keys) > 1 and self.threads > 1:
                if self.pool is None:
                    self.pool = concurrent.futures.ThreadPoolExecutor(self.threads, thread_name_prefix="siamjax-decode")
                decoded = list(self.pool.map(self._load_checked, keys))
            else:
                decoded = [self._load_checked(i) for i in keys]
            with self.lock:
                self.decoded += len(keys)
                for i, arr in zip(keys, decoded):
                    out[missing[i]] = arr
                    if self.cache_items:
                        self.cache[i] = arr
                        self.cache.move_to_end(i)
                while len(self.cache) > self.cache_items:
                    self.cache.popitem(last=False)
        return out


class LazyImages:
    """Array-like ``uint8 [N, H, W, C]``; row ``r`` is ``load(items[r])``, decoded when first asked for.

    Args:
        load: ``item -> uint8 [H, W, C]`` (already preprocessed); called from worker threads, so it
            must be thread-safe. Its errors propagate to the indexing call.
        num_items: how many items ``load`` accepts (0 .. num_items-1).
        shape: ``(H, W, C)`` of every image.
        cache_items: decoded images kept (least recently used dropped first); 0 = no cache.
        threads: decode threads per request.

    ``images[idx]`` (int, slice, int array or bool mask) returns a NumPy array; :meth:`view` returns
    another LazyImages over a subset of rows sharing this one's cache (what ``LabeledImages.subset``
    uses), so selecting a split decodes nothing.
    """

    def __init__(self, load: Callable[[int], np.ndarray], num_items: int, shape: Sequence[int],
                 cache_items: int = DEFAULT_CACHE_ITEMS, threads: int = 4, *, _store: _Store | None = None,
                 _items: np.ndarray | None = None):
        if _store is None:
            shape = tuple(int(s) for s in shape)
            if len(shape) != 3:
                raise ValueError(f"LazyImages shape must be (H, W, C), got {shape}")
            _store = _Store(load, shape, cache_items, threads)
            _items = np.arange(int(num_items), dtype=np.int64)
        self._store = _store
        self._items = _items

    # -- array protocol ------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self._items), *self._store.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.uint8)

    ndim = 4

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"LazyImages(uint8{list(self.shape)}, cached={len(self._store.cache)}/{self._store.cache_items})"

    def _rows(self, idx) -> np.ndarray:
        return np.arange(len(self))[idx]

    def __getitem__(self, idx) -> np.ndarray:
        if isinstance(idx, (int, np.integer)):
            return self._store.get(self._items[[int(idx)]])[0]
        return self._store.get(self._items[self._rows(idx)])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        arr = self[:]
        return arr if dtype is None else arr.astype(dtype)

    # -- lazy operations -----------------------------------------------------------------------
    def view(self, idx) -> "LazyImages":
        """The rows ``idx`` (int array, bool mask or slice) as a LazyImages sharing this cache."""
        return LazyImages(None, 0, (), _store=self._store, _items=self._items[self._rows(idx)])

    @property
    def items(self) -> np.ndarray:
        """int64 [N]: the loader's item id of each row."""
        return self._items

    @property
    def decoded(self) -> int:
        """Images decoded so far by this dataset (all views together)."""
        return self._store.decoded


def is_lazy(images) -> bool:
    """True for :class:`LazyImages` (rows decoded on demand), False for in-memory arrays."""
    return isinstance(images, LazyImages)
