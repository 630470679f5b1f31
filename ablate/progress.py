"""Progress lines for long work: which trial of how many, which step, and an estimate of time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """Writes progress to a stream (stderr by default); silent when ``quiet``.

    On a terminal the step line is redrawn in place; in a log it is printed at most every ``every`` seconds.
    """

    def __init__(self, stream: TextIO | None = None, quiet: bool = False, every: float = 5.0):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.every = every
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.prefix = ""

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self._tty:
            self.stream.write("\r\033[K")
        self.stream.write(text + "\n")
        self.stream.flush()

    def step(self, phase: str, done: int, total: int, elapsed: float) -> None:
        if self.quiet or total <= 0:
            return
        now = time.monotonic()
        if done < total and now - self._last < (0.5 if self._tty else self.every):
            return
        self._last = now
        eta = elapsed / done * (total - done) if done else 0.0
        text = f"{self.prefix}{phase} step {done}/{total} ({100 * done // total}%), {duration(elapsed)} elapsed, " \
               f"ETA {duration(eta)}"
        if self._tty:
            self.stream.write("\r\033[K" + text)
            if done >= total:
                self.stream.write("\n")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

