"""Progress of long command-line work, on one line of a terminal, redrawn in place.

Shown on stderr only when it is a terminal: piped or redirected output stays exactly the results.
"""
import threading
import time

from django.core.management.base import OutputWrapper


def is_terminal(stream):
    return bool(getattr(stream, "isatty", lambda: False)())


def write(stream, text):
    if isinstance(stream, OutputWrapper):
        stream.write(text, ending="")
    else:
        stream.write(text)
    stream.flush()


def minutes_and_seconds(seconds):
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes} min {seconds:02d} s" if minutes else f"{seconds} s"


class Progress:
    """`files: 120/5000, 3 failed, 41.0/s, 2 min 00 s left`, redrawn at most every `every` seconds."""

    def __init__(self, stream, total, noun="files", enabled=True, every=0.2, clock=time.monotonic):
        self.stream, self.total, self.noun, self.every, self.clock = stream, total, noun, every, clock
        self.enabled = enabled and is_terminal(stream)
        self.started = self.shown_at = clock()
        self.done = self.failed = 0
        self.visible = False

    def above(self, output):
        """Erase the line before `output` writes to the same terminal, so results never land on it."""
        if self.visible and is_terminal(output):
            write(self.stream, "\r\033[K")
            self.visible = False

    def advance(self, failed=False):
        self.done += 1
        self.failed += failed
        if self.enabled and (not self.visible or self.clock() - self.shown_at >= self.every or self.done == self.total):
            self.show()

    def line(self):
        elapsed = max(self.clock() - self.started, 1e-6)
        rate = self.done / elapsed
        parts = [f"{self.noun}: {self.done}/{self.total}"]
        if self.failed:
            parts.append(f"{self.failed} failed")
        parts.append(f"{rate:.1f}/s")
        if rate and self.done < self.total:
            parts.append(f"{minutes_and_seconds((self.total - self.done) / rate)} left")
        return ", ".join(parts)

    def show(self):
        self.shown_at, self.visible = self.clock(), True
        write(self.stream, f"\r\033[K{self.line()}")

    def close(self):
        """Leave the terminal as it was: the line is erased, the results stay on stdout."""
        if self.enabled:
            write(self.stream, "\r\033[K")


class Ticker:
    """`Building the model: 12 s` on a terminal, once a second, for work with no steps to count."""

    def __init__(self, stream, label, every=1.0):
        self.stream, self.label, self.every = stream, label, every
        self.enabled = is_terminal(stream)
        self.stop = threading.Event()

    def __enter__(self):
        if self.enabled:
            self.started = time.monotonic()
            self.thread = threading.Thread(target=self.run, daemon=True, name="ticker")
            self.thread.start()
        return self

    def run(self):
        while True:
            write(self.stream, f"\r\033[K{self.label}: {minutes_and_seconds(time.monotonic() - self.started)}")
            if self.stop.wait(self.every):
                return

    def __exit__(self, *exc):
        if self.enabled:
            self.stop.set()
            self.thread.join()
            write(self.stream, "\r\033[K")
