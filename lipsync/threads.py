"""Work handed to a thread so that stages overlap (decoding, face analysis, rendering and encoding
release the GIL in their native code)."""
from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

Item = TypeVar("Item")

_DONE = object()


class ahead(Iterator[Item]):
    """``items`` produced in a worker thread (called ``name``) that starts at once and keeps one
    item ahead of the consumer; errors re-raised to the consumer; ``close`` (also called by a
    ``yield from`` that is closed, and at the end) stops the worker."""

    def __init__(self, items: Iterator[Item], name: str):
        self._slots: queue.Queue = queue.Queue(maxsize=1)
        self._stop = threading.Event()
        self._finished = False
        # The worker holds the queue and the flag, not this object: dropping it stops the worker.
        self._worker = threading.Thread(target=_produce, args=(items, self._slots, self._stop), name=name, daemon=True)
        self._worker.start()

    def __next__(self) -> Item:
        if self._finished:
            raise StopIteration
        item, err = self._slots.get()
        if item is _DONE:
            self.close()
            if err is not None:
                raise err
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the worker (it drops what it was making) and wait for it."""
        self._finished = True
        self._stop.set()
        while self._worker.is_alive():
            try:
                self._slots.get_nowait()
            except queue.Empty:
                self._worker.join(0.05)

    def __del__(self) -> None:
        if not self._finished:
            self.close()


def _produce(items: Iterator, slots: queue.Queue, stop: threading.Event) -> None:
    try:
        for item in items:
            while not stop.is_set():
                try:
                    slots.put((item, None), timeout=0.1)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
        slots.put((_DONE, None))
    except BaseException as err:  # handed to the consumer
        slots.put((_DONE, err))
