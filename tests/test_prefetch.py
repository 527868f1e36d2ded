"""siamjax.data.prefetch: order, exceptions, cleanup on early exit, and the bound on live batches."""
import threading
import time

import pytest

from siamjax.data.prefetch import prefetch


def _prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "siamjax-prefetch" and t.is_alive()]


def test_steps_in_order():
    assert list(prefetch(lambda s: s * 10, 3, 9)) == [(s, s * 10) for s in range(3, 9)]
    assert list(prefetch(lambda s: s, 5, 5)) == []
    assert list(prefetch(lambda s: s, 0, 4, size=1)) == [(s, s) for s in range(4)]
    with pytest.raises(ValueError, match="size"):
        list(prefetch(lambda s: s, 0, 4, size=0))
    assert not _prefetch_threads()


def test_producer_exception_is_reraised_at_its_step():
    def make(step):
        if step == 3:
            raise KeyError(f"bad step {step}")
        return step

    got = []
    with pytest.raises(KeyError, match="bad step 3"):
        for step, batch in prefetch(make, 0, 10):
            got.append(step)
    assert got == [0, 1, 2]
    assert not _prefetch_threads()


@pytest.mark.parametrize("how", ["break", "close", "exception"])
def test_early_exit_leaves_no_thread(how):
    built = []

    def make(step):
        built.append(step)
        time.sleep(0.01)
        return step

    if how == "exception":
        with pytest.raises(RuntimeError):
            for step, _ in prefetch(make, 0, 1000, size=3):  # unwinding the loop drops (closes) it
                if step == 2:
                    raise RuntimeError("consumer failed")
    else:
        gen = prefetch(make, 0, 1000, size=3)
        for step, _ in gen:
            if step == 2:
                break
        if how == "close":
            gen.close()
        else:
            del gen  # the loop's generator is closed when its last reference goes
    assert not _prefetch_threads()
    n = len(built)
    time.sleep(0.05)
    assert len(built) == n <= 5  # nothing built after the exit: steps 0-2 and at most 2 ahead (size 3)


@pytest.mark.parametrize("size", [1, 2, 3])
def test_live_batches_never_exceed_size(size):
    """make_batch counts a batch in; the consumer counts it out when done, before asking for the next.
    A fast producer and a slow consumer: the producer is always ready to run ahead."""
    lock = threading.Lock()
    live = 0
    peak = 0

    def make(step):
        nonlocal live, peak
        with lock:
            live += 1
            peak = max(peak, live)
        return step

    steps = []
    for step, batch in prefetch(make, 0, 30, size=size):
        time.sleep(0.005)  # slow consumer
        steps.append(batch)
        with lock:
            live -= 1  # done with this batch
    assert steps == list(range(30))
    assert peak == size  # the bound is reached (the producer runs ahead) and never exceeded
    assert live == 0
    assert not _prefetch_threads()


def test_build_overlaps_consumer():
    """size=2: batch s+1 is built while the consumer uses batch s (the point of prefetching)."""
    built = [threading.Event() for _ in range(10)]

    def make(step):
        built[step].set()
        return step

    steps = []
    for step, batch in prefetch(make, 0, 10, size=2):
        # Still using batch `step`: batch step + 1 gets built meanwhile. Without overlap it would only be
        # built after this loop body asks for it, so the wait would run out (30 s: a hang guard, not a timing).
        if step + 1 < 10:
            assert built[step + 1].wait(timeout=30), f"batch {step + 1} was not built while batch {step} was in use"
        steps.append(batch)
    assert steps == list(range(10))
