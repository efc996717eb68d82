"""The emulator's clock: real time plus an offset that tests and the demo can advance."""

from __future__ import annotations

import threading
import time
from typing import Callable


class Clock:
    """Epoch seconds; starts at real time and only moves forward when advanced (or as time passes)."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], None]] = []

    def now(self) -> int:
        """Current emulator time in whole epoch seconds."""
        return int(self.now_float())

    def now_float(self) -> float:
        with self._lock:
            return time.time() + self._offset

    def advance(self, seconds: float) -> int:
        """Move the clock forward by `seconds` and let listeners (pending transfers…) catch up."""
        if seconds < 0:
            raise ValueError("the emulator clock only moves forward")
        with self._lock:
            self._offset += seconds
        for listener in list(self._listeners):
            listener()
        return self.now()

    def on_advance(self, listener: Callable[[], None]) -> None:
        self._listeners.append(listener)
