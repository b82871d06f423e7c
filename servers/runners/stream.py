"""What both runners share: the I/O thread with its event loop, the queue that carries
output lines to the caller's thread, the `should_stop` poll, and the splitting of raw
output into lines.

The caller is a synchronous job using Django's ORM, which refuses to run inside an event
loop, so the I/O runs under `asyncio.run` in a thread of its own and `on_lines` and
`should_stop` are only ever called from the caller's thread.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import queue
import re
import threading
import time
from collections.abc import Awaitable, Callable

from .base import RunnerError, RunResult

MAX_LINE_CHARS = 4000
POLL_SECONDS = 0.5
READ_SIZE = 64 * 1024
# How long a stopped script's processes get after SIGTERM before SIGKILL.
KILL_GRACE_SECONDS = 2.0

Sink = Callable[[list[str]], None]
# The I/O side of a run: given where to put lines and an event set when the caller asks
# to stop, return the exit status, or None when the stop request stopped the script.
Work = Callable[[Sink, asyncio.Event], Awaitable[int | None]]

_DONE = object()
_BREAK = re.compile(r"\r\n|\r|\n")


def self_deleting(script: str) -> str:
    """`script` with a first line that deletes the file bash reads it from: bash keeps the
    file open, and nothing of the script (secrets included) stays on disk by name while
    it runs. bash's own descriptor is close-on-exec, so its children cannot read it."""
    return 'rm -f -- "$0"\n' + script + ("" if script.endswith("\n") else "\n")


class LineSplitter:
    """Bytes in, whole lines out: UTF-8 with undecodable bytes replaced, split on "\\n",
    "\\r" and "\\r\\n" (progress bars redraw with "\\r"), line endings dropped, very long
    lines cut. Chunks may end anywhere, even inside a character or a "\\r\\n"."""

    def __init__(self, max_chars: int = MAX_LINE_CHARS):
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._max = max_chars
        self._partial = ""
        self._after_cr = False

    def feed(self, data: bytes) -> list[str]:
        return self._split(self._decoder.decode(data))

    def flush(self) -> list[str]:
        lines = self._split(self._decoder.decode(b"", final=True))
        if self._partial:
            lines.append(self._cut(self._partial))
            self._partial = ""
        return lines

    def _split(self, text: str) -> list[str]:
        if self._after_cr and text.startswith("\n"):
            text = text[1:]
        if not text:
            return []
        self._after_cr = text.endswith("\r")
        parts = _BREAK.split(text)
        parts[0] = self._partial + parts[0]
        # Bounded, however long a line without an ending grows; one character more
        # than the limit shows it was cut.
        self._partial = parts.pop()[: self._max + 1]
        return [self._cut(part) for part in parts]

    def _cut(self, line: str) -> str:
        return line if len(line) <= self._max else line[: self._max] + "…"


async def read_lines(read: Callable[[int], Awaitable[bytes]], deliver: Sink) -> None:
    """Read a byte stream to its end, handing its lines to `deliver` chunk by chunk."""
    splitter = LineSplitter()
    while chunk := await read(READ_SIZE):
        if lines := splitter.feed(chunk):
            deliver(lines)
    if lines := splitter.flush():
        deliver(lines)


async def unless_stopped(awaitable: Awaitable, stop: asyncio.Event):
    """Await `awaitable` unless `stop` is set first. Returns (stopped, result); when stopped
    the awaitable is cancelled."""
    task = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if task.done():
        return False, task.result()
    task.cancel()
    # Whatever it was doing (or failing at) no longer matters.
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return True, None


class _StopSignal:
    """The caller's stop request, handed to the event loop in the I/O thread whenever it
    exists (it may be asked for before the loop started or after it ended)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._requested = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def attach(self) -> asyncio.Event:
        event = asyncio.Event()
        with self._lock:
            self._loop, self._event = asyncio.get_running_loop(), event
            if self._requested:
                event.set()
        return event

    def request(self) -> None:
        with self._lock:
            self._requested = True
            if self._loop is not None and self._event is not None:
                # RuntimeError: the loop has already finished.
                with contextlib.suppress(RuntimeError):
                    self._loop.call_soon_threadsafe(self._event.set)


def run_streaming(
    work: Work,
    *,
    on_lines: Callable[[list[str]], None],
    should_stop: Callable[[], str | None],
    poll_seconds: float = POLL_SECONDS,
) -> RunResult:
    """Run `work` in an I/O thread; deliver its lines to `on_lines` in batches and ask
    `should_stop` every `poll_seconds`, both from this thread. RunnerError raised by
    `work` is raised here."""
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    signal = _StopSignal()
    outcome: dict = {}

    async def body():
        return await work(inbox.put, signal.attach())

    def thread_main():
        try:
            outcome["status"] = asyncio.run(body())
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            inbox.put(_DONE)

    thread = threading.Thread(target=thread_main, name="runner-io", daemon=True)
    thread.start()
    reason = ""
    next_check = time.monotonic() + poll_seconds
    finished = False
    try:
        while not finished:
            batch: list[str] = []
            try:
                item = inbox.get(timeout=max(0.0, next_check - time.monotonic()))
            except queue.Empty:
                item = None
            while item is not None:
                if item is _DONE:
                    finished = True
                    break
                batch.extend(item)
                try:
                    item = inbox.get_nowait()
                except queue.Empty:
                    item = None
            if batch:
                on_lines(batch)
            if not finished and time.monotonic() >= next_check:
                next_check = time.monotonic() + poll_seconds
                if not reason and (reason := should_stop() or ""):
                    signal.request()
    except BaseException:
        # on_lines or should_stop failed: stop the script before letting the error go.
        signal.request()
        thread.join(timeout=KILL_GRACE_SECONDS + 10)
        raise
    thread.join()
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, RunnerError):
            raise RunnerError(str(error)) from None
        raise error
    status = outcome.get("status")
    if status is None:
        return RunResult(None, reason or "Stopped.")
    return RunResult(status, "")


def run_async(coro_factory: Callable[[], Awaitable]):
    """Run a coroutine to its end in a thread of its own (the caller may be inside an
    event loop, or a Django job that must not be) and return its result or raise."""
    outcome: dict = {}

    def thread_main():
        try:
            outcome["result"] = asyncio.run(coro_factory())
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=thread_main, name="runner-io", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, RunnerError):
            raise RunnerError(str(error)) from None
        raise error
    return outcome.get("result")
