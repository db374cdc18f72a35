"""uvicorn's httptools protocol, with the read limits it does not have.

Measured on uvicorn 0.54 with httptools: a connection that sends nothing, or a request
line a byte at a time, stays open forever (the keep-alive timer is armed only after a
response); headers have no size or count limit (one GET with 34 MB of headers took the
process from 90 to 625 MiB); and nothing bounds the number of open connections short of
the open-file limit, after which ``accept()`` fails for everyone. uvicorn's
``limit_concurrency`` does not help: it answers 503 to every request once that many
connections are open, idle ones included, so idle connections would still lock out
``/healthz``. No uvicorn option covers the rest, hence this subclass, which adds:

- an idle timer from the moment a connection is made (uvicorn arms it after responses);
- a header deadline from a request's first byte to the end of its headers (408);
- a body deadline from the end of the headers to the end of the body (connection closed);
- header size and count limits checked as bytes arrive (431), before httptools buffers
  more than one read past the limit;
- a bound on the body uvicorn drains after an early answer (it would drain any amount);
- a connection cap: past it, the connection that has waited longest without a request
  in progress is closed to make room, so idle and slow clients cannot lock others out.

Everything else (parsing, ASGI cycle, flow control, pipelining) is uvicorn's own. The
subclass leans on uvicorn's protocol internals (its callbacks, ``cycle``, ``pipeline``,
the keep-alive timer), as of 0.54, so pyproject.toml holds uvicorn below 0.55. Importing
this module fails with a clear error if one of the methods it relies on is gone;
tests/unit/test_server_settings.py checks the attributes too, and
tests/acceptance/test_server_limits.py the behaviour.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from hookline.exceptions import RequestRefused
from hookline.serving.settings import ServerSettings

log = logging.getLogger("hookline.serving")

#: uvicorn's methods that the subclass overrides or calls.
UVICORN_METHODS = (
    "connection_made",
    "connection_lost",
    "data_received",
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
    "send_400_response",
    "handle_websocket_upgrade",
    "timeout_keep_alive_handler",
    "_unset_keepalive_if_required",
    "_should_upgrade",
    "_unsupported_upgrade_warning",
)
#: uvicorn's per-connection attributes that the subclass reads or sets.
UVICORN_ATTRIBUTES = (
    "loop",
    "parser",
    "transport",
    "connections",
    "cycle",
    "pipeline",
    "timeout_keep_alive",
    "timeout_keep_alive_task",
)

_missing = [
    name for name in UVICORN_METHODS if not callable(getattr(HttpToolsProtocol, name, None))
]
if _missing:
    raise ImportError(
        f"uvicorn {uvicorn.__version__}'s HttpToolsProtocol has no {', '.join(_missing)}: "
        "hookline.serving.protocol was written against uvicorn 0.54; install that version"
    )


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """Set ``limits`` and ``max_connections`` on a subclass (see ``protocol_for``)."""

    limits: ClassVar[ServerSettings] = ServerSettings()
    max_connections: ClassVar[int] = ServerSettings().max_connections
    #: This server's connections that wait for a request (no request being read past
    #: its headers, or answered), longest waiting first: eviction is O(1).
    waiting: ClassVar[dict[GuardedHttpToolsProtocol, None]] = {}
    #: Connections closed to make room whose close has not completed yet.
    closing: ClassVar[set[GuardedHttpToolsProtocol]] = set()
    #: Seconds between two sweeps for passed deadlines, and the next sweep (if any).
    sweep_interval: ClassVar[float] = 1.0
    sweep: ClassVar[asyncio.TimerHandle | None] = None

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.timeout_keep_alive = self.limits.idle_timeout  # type: ignore[assignment]
        #: When the current read phase must end (loop time), and what happens then.
        self._deadline: tuple[float, Callable[[], None]] | None = None
        #: A request has begun and its headers are not complete yet.
        self._in_headers = False
        #: Whole reads are being counted as header bytes (the headers span reads).
        self._counting_reads = False
        self._header_bytes = 0
        self._header_count = 0
        #: Body bytes dropped because the answer was already sent.
        self._drained = 0

    # -- connections ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )
        self.waiting[self] = None
        while len(self.connections) - len(self.closing) > self.max_connections:
            # The newcomer is the newest waiting connection: it goes only when every
            # other connection is busy with a request.
            victim = next(iter(self.waiting))
            del self.waiting[victim]
            self.closing.add(victim)
            victim.transport.close()
            _evictions.note(self.max_connections)

    def connection_lost(self, exc: Exception | None) -> None:
        self._clear_deadline()
        self.waiting.pop(self, None)
        self.closing.discard(self)
        super().connection_lost(exc)

    # -- reading ----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        # uvicorn's data_received, plus the limits; a RequestRefused raised by a parser
        # callback stops httptools and arrives here as the cause of its callback error.
        # Unlike uvicorn, bytes alone do not stop the idle timer: the parser skips blank
        # lines between requests, so a client sending only CRLFs would never be timed
        # out. A request's first byte does (on_message_begin).
        self._counting_reads = self._in_headers
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, RequestRefused):
                self._refuse(exc.__context__)
            else:
                self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserError:
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if self._in_headers and self._counting_reads:
            # The whole read belongs to headers begun in an earlier read: httptools
            # buffers an unfinished header, so count raw bytes, not finished fields.
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._refuse(self._headers_too_large())

    def on_message_begin(self) -> None:
        self._unset_keepalive_if_required()
        super().on_message_begin()
        self._in_headers = True
        self._counting_reads = False
        self._header_bytes = self._header_count = self._drained = 0
        self._set_deadline(self.limits.header_timeout, self._headers_timed_out)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._header_count += 1
        if self._header_count > self.limits.max_header_count:
            raise RequestRefused(
                431, f"more than {self.limits.max_header_count} header fields in one request"
            )
        self._count_header_bytes(len(name) + len(value) + 4)

    def _count_header_bytes(self, size: int) -> None:
        if not self._counting_reads:
            self._header_bytes += size
            if self._header_bytes > self.limits.max_header_bytes:
                raise self._headers_too_large()

    def _headers_too_large(self) -> RequestRefused:
        return RequestRefused(
            431, f"the request line and headers are over {self.limits.max_header_bytes} bytes"
        )

    def on_headers_complete(self) -> None:
        self.waiting.pop(self, None)
        self._in_headers = self._counting_reads = False
        self._set_deadline(self.limits.body_timeout, self._body_timed_out)
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self.cycle.response_complete:
            # Answered early (401, 413): uvicorn drops the rest of the body; bound that.
            # The body deadline, not the idle timer the answer armed, governs until the
            # body ends, so that the client finishes sending and reads the answer.
            self._unset_keepalive_if_required()
            self._drained += len(body)
            if self._drained > self.limits.drain_bytes:
                raise RequestRefused(None)  # the answer is already out: just close
        super().on_body(body)

    def on_message_complete(self) -> None:
        self._clear_deadline()
        super().on_message_complete()
        if (
            self.cycle is not None
            and self.cycle.response_complete
            and not self.pipeline
            and not self.parser.should_upgrade()
            and not self.transport.is_closing()
        ):
            # The body of a request answered early has ended: the connection is idle
            # from now on, as after any answer (uvicorn arms that timer only when the
            # answer is sent).
            self._unset_keepalive_if_required()
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if (self.cycle is None or self.cycle.response_complete) and not self.pipeline:
            # Waiting again, as the newest (an early answer counts: what is left of
            # that body is only drained).
            self.waiting.pop(self, None)
            if not self.transport.is_closing():
                self.waiting[self] = None

    # -- deadlines and refusals -------------------------------------------------------

    # Deadlines are checked by one sweep per server every ``sweep_interval`` rather than
    # by a timer per request: arming and cancelling two loop timers per request would
    # cost more than everything else these limits add.

    def _set_deadline(self, seconds: float, expire: Callable[[], None]) -> None:
        self._deadline = (self.loop.time() + seconds, expire)
        cls = type(self)
        if cls.sweep is None:
            cls.sweep = self.loop.call_later(
                cls.sweep_interval, cls._sweep, self.loop, self.connections
            )

    def _clear_deadline(self) -> None:
        self._deadline = None

    @classmethod
    def _sweep(cls, loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
        # Rescheduled while the server has connections; the next deadline restarts it.
        cls.sweep = (
            loop.call_later(cls.sweep_interval, cls._sweep, loop, connections)
            if connections
            else None
        )
        now = loop.time()
        for connection in list(connections):
            deadline = getattr(connection, "_deadline", None)
            if deadline is not None and deadline[0] <= now:
                connection._deadline = None
                try:
                    deadline[1]()
                except Exception:
                    log.exception("could not end a connection past its deadline")

    def _headers_timed_out(self) -> None:
        if self._in_headers and not self.transport.is_closing():
            self._refuse(
                RequestRefused(
                    408, f"the request headers took longer than {self.limits.header_timeout:g} s"
                )
            )

    def _body_timed_out(self) -> None:
        # The application may be waiting on this body; closing tells it the client left.
        if not self.transport.is_closing():
            log.debug("closing a connection whose body took over %g s", self.limits.body_timeout)
            self.transport.close()

    def _refuse(self, refusal: RequestRefused) -> None:
        """Answer ``refusal`` and close; just close if an earlier (pipelined) request
        of this connection is still being answered, so that answers never interleave."""
        self._clear_deadline()
        if self.transport.is_closing():
            return
        if refusal.status is not None and (self.cycle is None or self.cycle.response_complete):
            body = refusal.message.encode()
            self.transport.write(
                b"".join(
                    [
                        STATUS_LINE[refusal.status],
                        b"content-type: text/plain; charset=utf-8\r\n",
                        b"content-length: %d\r\n" % len(body),
                        b"connection: close\r\n\r\n",
                        body,
                    ]
                )
            )
        self.transport.close()


class _Evictions:
    """Counts connections closed at the cap and logs them at most every 10 s: under a
    flood, one line per connection would be a flood of its own."""

    def __init__(self) -> None:
        self.count = 0
        self.logged_at = 0.0

    def note(self, cap: int) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= 10:
            log.warning(
                "%d connection(s) closed to stay at the cap of %d open connections "
                "(the one waiting longest without a request goes first)",
                self.count,
                cap,
            )
            self.count, self.logged_at = 0, now


_evictions = _Evictions()


def protocol_for(limits: ServerSettings, max_connections: int) -> type[GuardedHttpToolsProtocol]:
    """The protocol class uvicorn should use (its ``http`` option) for these limits."""
    return type(
        "HooklineHttpProtocol",
        (GuardedHttpToolsProtocol,),
        {
            "limits": limits,
            "max_connections": max_connections,
            "waiting": {},
            "closing": set(),
            # Deadlines fire at most a quarter late (a second at the defaults).
            "sweep_interval": min(1.0, limits.header_timeout / 4, limits.body_timeout / 4),
        },
    )
