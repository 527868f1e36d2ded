"""Background-thread batch prefetching: the host builds batch s+1 while the device runs step s."""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterator


def prefetch(make_batch: Callable[[int], object], start: int, stop: int, size: int = 2) -> Iterator[tuple[int, object]]:
    """Yield ``(step, make_batch(step))`` for ``start <= step < stop`` with ``size`` batches built ahead.

    At most ``size`` + 1 batches exist at a time. An exception in the producer is re-raised here.
    """
    q: queue.Queue = queue.Queue(maxsize=size)
    stop_event = threading.Event()
    done = object()

    def producer():
        try:
            for step in range(start, stop):
                if stop_event.is_set():
                    return
                q.put((step, make_batch(step)))
            q.put(done)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop_event.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
