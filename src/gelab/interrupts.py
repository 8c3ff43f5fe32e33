"""Stopping politely: SIGTERM and SIGHUP end a ``gelab`` command the way Ctrl-C does.

:func:`stop_on_signals` turns them into :class:`Terminated`, a ``KeyboardInterrupt``, so every clean-up
that runs on Ctrl-C runs on them too: temporary folders are removed, logs closed, worker pools and
child processes stopped. :func:`quiet_worker` is the initializer of worker pools: a worker leaves
Ctrl-C to its parent and, when the parent stops it, ends without a traceback.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived (``signum`` says which)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside, the first SIGTERM or SIGHUP raises :class:`Terminated` in the main thread; later ones
    are ignored so that the clean-up runs to its end. Previous handlers come back on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pid, fired = os.getpid(), []

    def on_signal(signum: int, frame: Any) -> None:
        if os.getpid() != pid:  # a forked child that kept this handler: end as the signal's default does
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if not fired:
            fired.append(signum)
            raise Terminated(signum)

    previous = {s: signal.signal(s, on_signal) for s in SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


def quiet_worker() -> None:
    """Initializer of pool workers: Ctrl-C is the parent's to handle; SIGTERM and SIGHUP end the worker
    at once, without a traceback (the parent terminates its pool when it stops)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for s in SIGNALS:
        signal.signal(s, signal.SIG_DFL)
