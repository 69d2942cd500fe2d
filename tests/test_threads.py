"""lipsync.threads.ahead: the core's prefetch of video chunks and the viseme backend's render thread."""
from __future__ import annotations

import threading

import pytest

from lipsync.threads import ahead


def test_items_come_in_order_from_another_thread_one_ahead():
    made: list[int] = []
    threads: set[str] = set()

    def items():
        for k in range(5):
            threads.add(threading.current_thread().name)
            made.append(k)
            yield k

    stream = ahead(items(), "producer")
    for _ in range(100):  # the worker starts at once, before the first item is asked for
        if made:
            break
        threading.Event().wait(0.01)
    assert 1 <= len(made) <= 2
    assert next(stream) == 0
    for _ in range(100):  # it makes the next item (and one queued) while we hold this one
        if len(made) >= 2:
            break
        threading.Event().wait(0.01)
    assert 2 <= len(made) <= 3
    assert list(stream) == [1, 2, 3, 4]
    assert threads == {"producer"}


def test_an_error_in_the_worker_is_raised_to_the_consumer():
    def items():
        yield 1
        raise ValueError("bad frame")

    stream = ahead(items(), "producer")
    assert next(stream) == 1
    with pytest.raises(ValueError, match="bad frame"):
        next(stream)


def test_the_worker_stops_when_the_consumer_does():
    made: list[int] = []

    def items():
        for k in range(1000):
            made.append(k)
            yield k

    stream = ahead(items(), "producer-stops")
    assert next(stream) == 0
    stream.close()
    assert not any(t.name == "producer-stops" for t in threading.enumerate())
    assert len(made) <= 3
    with pytest.raises(StopIteration):
        next(stream)


@pytest.mark.parametrize("how", ["close", "drop"])
def test_a_worker_never_consumed_stops_when_closed_or_dropped(how):
    def items():
        yield from range(1000)

    stream = ahead(items(), f"producer-{how}")
    if how == "close":
        stream.close()
    else:
        del stream
    for _ in range(100):
        if not any(t.name == f"producer-{how}" for t in threading.enumerate()):
            break
        threading.Event().wait(0.01)
    assert not any(t.name == f"producer-{how}" for t in threading.enumerate())
