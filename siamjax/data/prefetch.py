"""Background-thread batch prefetching: the host builds batch s+1 while the device runs step s."""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator


def prefetch(make_batch: Callable[[int], object], start: int, stop: int, size: int = 2) -> Iterator[tuple[int, object]]:
    """Yield ``(step, make_batch(step))`` for ``start <= step < stop``, built by a background thread.

    At most ``size`` batches exist at a time: the one the consumer holds, the ones built ahead and
    waiting, and the one the producer is building. The producer takes one of ``size`` permits (a
    semaphore) before it builds a batch; the consumer gives it back when it asks for the next item
    (or stops iterating), so a batch counts as held until then. ``size=2`` (the default) builds one
    batch ahead while the consumer uses the current one; ``size=1`` builds nothing ahead.

    An exception raised by ``make_batch`` is re-raised here, in the consumer, at the step where it
    happened. Leaving the loop early (``break``, an exception, ``close()``) stops the producer: it
    finishes the batch it may be building, builds no other, and its thread has ended when the
    generator is closed.
    """
    if size < 1:
        raise ValueError(f"prefetch size must be >= 1, got {size}")
    q: queue.Queue = queue.Queue()  # unbounded: the semaphore bounds the batches, puts never block
    permits = threading.Semaphore(size)
    stop_event = threading.Event()
    done = object()

    def producer():
        try:
            for step in range(start, stop):
                permits.acquire()
                if stop_event.is_set():
                    return
                q.put((step, make_batch(step)))
            q.put(done)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    thread = threading.Thread(target=producer, name="siamjax-prefetch", daemon=True)
    thread.start()
    holding = False  # the consumer holds a batch (and its permit)
    try:
        while True:
            if holding:  # asking for the next item: the previous batch is done with
                holding = False
                permits.release()
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            holding = True
            yield item
    finally:
        stop_event.set()
        permits.release()  # wake a producer waiting for a permit: it sees the stop and returns
        thread.join()
