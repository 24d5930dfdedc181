"""Ctrl-C for the ``jaxinit`` command (installed by the command, never by a library call).

The first SIGINT raises KeyboardInterrupt in the main thread and is remembered: an
interrupt that arrives inside a compiled call and is lost there is raised again at the next
:meth:`Interrupt.check`, and a watchdog ends the process ``grace`` seconds later if the
command has not ended by itself. One that arrives inside jax's garbage-collector callback
(where Python would print "Exception ignored in: _xla_gc_callback" and drop it) is not
raised there: the watchdog ends the process at once. A second SIGINT ends it at once. Either way the exit
status is 130 and only the registered clean-ups run: outputs are written atomically
(a temporary file renamed into place), so nothing is left half-written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


class Interrupt:
    """Ctrl-C during a command. Not installed (no handler) it is never set: :meth:`check`
    does nothing and :meth:`deferred` only marks a block."""

    def __init__(self, message: str = "jaxinit: interrupted", grace: float = 3.0) -> None:
        self.count = 0
        self.message = message
        self.grace = grace
        self.gc_grace = 0.2  # seconds before the watchdog ends a process interrupted in gc
        self._defer = False
        self._timer: threading.Timer | None = None
        self._cleanups: list[Callable[[], None]] = []

    def handler(self, signum: int, frame: Any) -> None:
        self.count += 1
        if self.count >= 2:  # the user insists
            self.exit_now()
        if _in_gc_callback(frame):  # an exception there would be printed and lost
            self._arm(self.gc_grace)
            return
        self._arm(self.grace)
        if not self._defer:
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if a Ctrl-C came (also one lost inside a compiled call)."""
        if self.count:
            raise KeyboardInterrupt

    def on_exit(self, cleanup: Callable[[], None]) -> None:
        """Run ``cleanup`` (e.g. remove temporary files) if the watchdog ends the process."""
        self._cleanups.append(cleanup)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """A block that a SIGINT does not break (a few renames): it is only remembered."""
        self._defer = True
        try:
            yield
        finally:
            self._defer = False

    def exit_now(self) -> None:
        """Clean up, say so, and end the process with status 130 (no interpreter teardown:
        JAX's threads may still be running)."""
        for cleanup in self._cleanups:
            with contextlib.suppress(Exception):
                cleanup()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        with contextlib.suppress(Exception):
            sys.stderr.write(f"\n{self.message}\n")
            sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)

    def _arm(self, seconds: float) -> None:
        if self._timer is None:
            self._timer = threading.Timer(seconds, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        self._timer = None
        if self._defer:  # a few renames under way: let them finish
            self._arm(0.2)
            return
        self.exit_now()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _in_gc_callback(frame: Any) -> bool:
    """Whether the handler runs inside a garbage-collector callback (jax registers one,
    ``_xla_gc_callback``): Python prints and drops an exception raised there."""
    return frame is not None and frame.f_code.co_name == "_xla_gc_callback"


@contextlib.contextmanager
def sigint(message: str = "jaxinit: interrupted", grace: float = 3.0) -> Iterator[Interrupt]:
    """Install the command's SIGINT handler for the block (main thread only; elsewhere the
    returned :class:`Interrupt` is never set) and restore the previous one after it."""
    interrupt = Interrupt(message, grace)
    if threading.current_thread() is not threading.main_thread():
        yield interrupt
        return
    previous = signal.signal(signal.SIGINT, interrupt.handler)
    # orbax logs an exception that reaches its checkpoint waits, KeyboardInterrupt included,
    # with its traceback (absl's logger): the command says "interrupted" in one line instead
    absl = logging.getLogger("absl")
    absl.addFilter(_not_an_interrupt)
    try:
        yield interrupt
    finally:
        signal.signal(signal.SIGINT, previous)
        absl.removeFilter(_not_an_interrupt)
        interrupt.disarm()


def _not_an_interrupt(record: logging.LogRecord) -> bool:
    """A log record to keep: any but one carrying a KeyboardInterrupt."""
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, KeyboardInterrupt)
