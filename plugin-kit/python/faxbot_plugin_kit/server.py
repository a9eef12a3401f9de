"""The HTTP side of the protocol: six routes under ``/v1`` on the standard library's threading HTTP server.

What this module guarantees, so a plugin author does not have to:

* **Authentication.** With a token, every route but ``GET /v1/health`` needs ``Authorization: Bearer <token>``
  (compared in constant time); anything else is ``401 unauthenticated``.
* **Bounded input.** A request body needs a ``Content-Length`` no larger than the route's limit, which is
  checked *before* a byte of the body is read; a refused body is never read and the connection is closed.
* **Strict parsing.** Invalid JSON, the wrong shape, unknown fields and bad base64 are ``400 bad_request``,
  with a message that names fields and never quotes the input.
* **No PHI out.** Every error message passes the PHI mask; an unexpected exception is answered with a fixed
  text (its own may quote the number) and logged by type and location only; request bodies and numbers are
  never logged.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple
from urllib.parse import unquote

from .manifest import ManifestError, validate_manifest
from .phi import mask_numbers
from .plugin import Plugin
from .types import (
    BAD_REQUEST,
    CAP_CANCEL,
    CAP_WEBHOOK,
    DEFAULT_WEBHOOK_BYTES,
    NOT_FOUND,
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    REJECTED,
    UNAUTHENTICATED,
    UNAVAILABLE,
    UNSUPPORTED,
    FaxAnswer,
    Manifest,
    PluginError,
    SendRequest,
    ShapeError,
    WebhookRequest,
    retry_after_seconds,
)

logger = logging.getLogger("faxbot_plugin_kit")

DEFAULT_MAX_BODY_BYTES = 48 * 1024 * 1024
"""Largest ``send`` body: a 32 MiB document in base64 (about 43 MiB) plus the rest of the request."""

WEBHOOK_SLACK_BYTES = 64 * 1024
"""What a webhook request may hold beyond the callback body in base64: its URL and headers."""

CANCEL_MAX_BODY_BYTES = 64 * 1024
"""``cancel`` takes no body; a small one is read and ignored rather than refused, for tolerant clients."""

INTERNAL_ERROR = "internal plugin error"
"""The message for an exception that is not a :class:`PluginError`; its own text may hold PHI."""

_PROVIDER_ID_MAX = 200
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")


def webhook_body_limit(manifest: Manifest) -> int:
    """The largest ``POST /v1/webhook`` body for ``manifest``: its ``webhook.maxBytes`` in base64 plus
    :data:`WEBHOOK_SLACK_BYTES` for the URL and headers."""
    max_bytes = manifest.webhook.max_bytes if manifest.webhook is not None else DEFAULT_WEBHOOK_BYTES
    return 4 * ((max_bytes + 2) // 3) + WEBHOOK_SLACK_BYTES


def _size(n: int) -> str:
    # Limits are shown in units short enough that the PHI mask (five digits) leaves them readable.
    if n >= 1024 * 1024:
        return "%.1f MiB" % (n / (1024.0 * 1024.0))
    if n >= 1024:
        return "%d KiB" % (n // 1024)
    return "%d bytes" % n


class _Refusal(Exception):
    """An answer decided before the plugin is called (bad token, bad route, bad body)."""

    def __init__(self, status: int, kind: str, message: str, headers: Sequence[Tuple[str, str]] = ()):
        super().__init__(kind, message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = list(headers)


class _Route:
    """One protocol route: its operation name, method and the provider id from its path, if any."""

    __slots__ = ("op", "method", "provider_id")

    def __init__(self, op: str, method: str, provider_id: Optional[str] = None):
        self.op = op
        self.method = method
        self.provider_id = provider_id


def _route(path: str) -> Optional[_Route]:
    """The route for a request path (without its query), or ``None`` for an unknown path."""
    fixed = {"/v1/health": ("health", "GET"), "/v1/manifest": ("manifest", "GET"),
             "/v1/send": ("send", "POST"), "/v1/webhook": ("webhook", "POST")}
    if path in fixed:
        return _Route(*fixed[path])
    parts = path.split("/")
    # ["", "v1", "faxes", id] or ["", "v1", "faxes", id, "cancel"]
    if len(parts) in (4, 5) and parts[0] == "" and parts[1] == "v1" and parts[2] == "faxes" and parts[3]:
        if len(parts) == 5 and parts[4] != "cancel":
            return None
        try:
            provider_id = unquote(parts[3], errors="strict")
        except UnicodeDecodeError:
            return None
        if not 1 <= len(provider_id) <= _PROVIDER_ID_MAX:
            return None
        return _Route("cancel", "POST", provider_id) if len(parts) == 5 else _Route("status", "GET", provider_id)
    return None


def _path_of(target: str) -> str:
    """The path of a request target without query or fragment. Not ``urlsplit``, which would read a target
    starting with ``//`` as a host name and route what follows it."""
    return target.split("?", 1)[0].split("#", 1)[0]


def _no_duplicate_keys(pairs: List[Tuple[str, Any]]) -> Dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


def _no_constants(_name: str) -> Any:
    raise ValueError("NaN and Infinity are not JSON")


def _parse_json(body: bytes, what: str) -> Any:
    try:
        return json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
    except (ValueError, RecursionError):
        # Never the parser's message: it quotes the document, which holds the number.
        raise ShapeError("%s is not valid JSON" % what) from None


def _where(exc: BaseException) -> str:
    """Where an exception was raised, as ``file:line in function`` for the innermost frames (no message)."""
    frames = traceback.extract_tb(exc.__traceback__)[-3:]
    return " <- ".join("%s:%s in %s" % (os.path.basename(f.filename), f.lineno, f.name) for f in reversed(frames))


class PluginRequestHandler(BaseHTTPRequestHandler):
    """Answers the protocol's routes for ``self.server.plugin``. One instance per connection."""

    protocol_version = "HTTP/1.1"
    server_version = "faxbot-plugin-kit"
    sys_version = ""
    # Seconds a connection may stay silent (mid-request or idle between requests) before it is dropped, so a
    # stalled client cannot hold a thread for ever.
    timeout = 60

    server: "PluginServer"

    _expect_continue = False
    _unread_body = False

    # -- http.server hooks -------------------------------------------------------------------------------

    def parse_request(self) -> bool:
        self._expect_continue = False
        self._unread_body = False
        # http.server sets the path only once the request line parses; without this, an unparsable request
        # on a kept-alive connection would be logged with the previous request's path.
        self.path = ""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            # HTTP/0.9 has no status line or headers, so it could not carry a token or an error body.
            self.send_error(400)
            return False
        return True

    def handle_expect_100(self) -> bool:
        # Do not promise to read the body before the checks: 100 Continue is sent only once the request has
        # passed them (see _read_body), so a refused upload is never sent at all.
        self._expect_continue = True
        return True

    def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
        # http.server calls this for requests it cannot parse. Its own messages quote the request line, and
        # its body is HTML; answer with the protocol's error body and a fixed message instead.
        self.close_connection = True
        self._unread_body = True
        # A request line that failed to parse leaves the HTTP/0.9 default, which would suppress the status
        # line and headers of this answer.
        self.request_version = "HTTP/1.1"
        if code == 501:
            answer = _error_answer(501, UNSUPPORTED, "method not supported")
        else:
            # Every other status it uses (400, 414, 431, 505) means a request no retry would fix.
            answer = _error_answer(code, BAD_REQUEST, "malformed HTTP request")
        self._send(answer)

    def version_string(self) -> str:
        return self.server_version

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # Method, path without its query (masked, in case a caller put a number in it) and status; never a
        # header or a body.
        path = _path_of(self.path) if isinstance(getattr(self, "path", None), str) and self.path else "-"
        logger.debug("%s %s %s", getattr(self, "command", None) or "-", mask_numbers(path), code)

    def log_message(self, format: str, *args: Any) -> None:
        # The default writes every request and error to stderr, quoting the request line; see log_request.
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    do_HEAD = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    # -- the protocol ------------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        te = self.headers.get_all("Transfer-Encoding") or []
        cl = self.headers.get_all("Content-Length") or []
        self._unread_body = bool(te) or any(v.strip() != "0" for v in cl)
        try:
            answer = self._answer()
        except _ClientGone:
            # The client went away or stalled mid-body: nobody to answer.
            self.close_connection = True
            return
        except _Refusal as r:
            answer = _error_answer(r.status, r.kind, r.message, r.headers)
        except PluginError as e:
            headers = []
            if e.retry_after_ms is not None:
                headers.append(("Retry-After", str(retry_after_seconds(e.retry_after_ms))))
            answer = _Answer(e.http_status, e.to_json(), headers)
        except Exception as e:  # noqa: BLE001 - the boundary: anything else is the plugin's bug.
            logger.error("plugin raised %s at %s (its message is not logged: it may hold PHI)",
                         type(e).__name__, _where(e))
            answer = _error_answer(503, UNAVAILABLE, INTERNAL_ERROR)
        self._send(answer)

    def _answer(self) -> "_Answer":
        route = _route(_path_of(self.path))
        if route is not None and route.op == "health":
            if self.command != "GET":
                raise _Refusal(405, BAD_REQUEST, "method not allowed", [("Allow", "GET")])
            return self._health()
        self._authenticate()
        if route is None:
            raise _Refusal(404, NOT_FOUND, "no such route")
        if self.command != route.method:
            raise _Refusal(405, BAD_REQUEST, "method not allowed", [("Allow", route.method)])
        self._check_protocol()
        op: Callable[[_Route], _Answer] = getattr(self, "_op_" + route.op)
        return op(route)

    def _authenticate(self) -> None:
        expected = self.server.token_bytes
        if expected is None:
            return
        values = self.headers.get_all("Authorization") or []
        given = values[0].strip() if len(values) == 1 else ""
        scheme, _, credentials = given.partition(" ")
        # Header values arrive decoded as Latin-1, so encoding them back yields the bytes that were sent.
        try:
            presented = credentials.strip().encode("latin-1")
        except UnicodeEncodeError:
            presented = b""
        same = hmac.compare_digest(presented, expected)
        if not (same and scheme.lower() == "bearer"):
            raise _Refusal(401, UNAUTHENTICATED, "missing or wrong plugin token",
                           [("WWW-Authenticate", 'Bearer realm="faxbot-plugin"')])

    def _check_protocol(self) -> None:
        values = self.headers.get_all(PROTOCOL_HEADER) or []
        if values and (len(values) != 1 or values[0].strip() != str(PROTOCOL_VERSION)):
            raise _Refusal(400, BAD_REQUEST, "this plugin speaks protocol %d" % PROTOCOL_VERSION)

    def _read_body(self, limit: int, required: bool) -> bytes:
        """The request body, refused before a byte is read when it is chunked, unsized or over ``limit``."""
        if self.headers.get_all("Transfer-Encoding"):
            raise _Refusal(411, BAD_REQUEST, "a request body needs Content-Length (chunked bodies are not accepted)")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            if required:
                raise _Refusal(411, BAD_REQUEST, "a request body needs Content-Length")
            return b""
        if len(lengths) != 1 or not _CONTENT_LENGTH.fullmatch(lengths[0].strip()):
            raise _Refusal(400, BAD_REQUEST, "Content-Length is not a single number")
        length = int(lengths[0].strip())
        if length > limit:
            raise _Refusal(413, REJECTED, "request body larger than the limit of %s" % _size(limit))
        try:
            if self._expect_continue:
                self.send_response_only(100)
                self.end_headers()
            body = self.rfile.read(length) if length else b""
        except OSError:
            raise _ClientGone() from None
        if len(body) < length:
            raise _ClientGone()
        self._unread_body = False
        return body

    def _health(self) -> "_Answer":
        try:
            problem = self.server.plugin.health()
        except PluginError as e:
            problem = e.message
        except Exception as e:  # noqa: BLE001 - a failing health check is an answer, not a crash.
            logger.error("plugin health raised %s at %s", type(e).__name__, _where(e))
            problem = INTERNAL_ERROR
        if problem is None:
            return _Answer(200, {"status": "ok"})
        return _Answer(503, {"status": "failing", "message": mask_numbers(str(problem))})

    def _op_manifest(self, route: _Route) -> "_Answer":
        return _Answer(200, self.server.manifest_json)

    def _op_send(self, route: _Route) -> "_Answer":
        body = self._read_body(self.server.max_body_bytes, required=True)
        try:
            req = SendRequest.from_json(_parse_json(body, "the send request"))
        except ShapeError as e:
            raise _Refusal(400, BAD_REQUEST, str(e)) from None
        if self.server.manifest.needs_document and req.document is None:
            raise _Refusal(400, BAD_REQUEST, "this plugin needs the document (manifest needsDocument)")
        return _fax_answer(self.server.plugin.send(req), "send")

    def _op_status(self, route: _Route) -> "_Answer":
        self._read_body(CANCEL_MAX_BODY_BYTES, required=False)
        return _fax_answer(self.server.plugin.status(route.provider_id or ""), "status")

    def _op_cancel(self, route: _Route) -> "_Answer":
        if CAP_CANCEL not in self.server.manifest.capabilities:
            raise _Refusal(501, UNSUPPORTED, "this plugin cannot cancel faxes")
        self._read_body(CANCEL_MAX_BODY_BYTES, required=False)
        self.server.plugin.cancel(route.provider_id or "")
        return _Answer(204, None)

    def _op_webhook(self, route: _Route) -> "_Answer":
        if CAP_WEBHOOK not in self.server.manifest.capabilities:
            raise _Refusal(501, UNSUPPORTED, "this plugin takes no callbacks")
        body = self._read_body(self.server.webhook_limit, required=True)
        try:
            req = WebhookRequest.from_json(_parse_json(body, "the webhook request"))
        except ShapeError as e:
            raise _Refusal(400, BAD_REQUEST, str(e)) from None
        events = self.server.plugin.webhook(req)
        if not isinstance(events, (list, tuple)) or not all(isinstance(e, FaxAnswer) for e in events):
            logger.error("plugin webhook returned %s, not a list of FaxAnswer", type(events).__name__)
            raise _Refusal(503, UNAVAILABLE, INTERNAL_ERROR)
        return _Answer(200, {"events": [e.to_json() for e in events]})

    # -- writing -----------------------------------------------------------------------------------------

    def _send(self, answer: "_Answer") -> None:
        body = b"" if answer.obj is None else json.dumps(answer.obj, separators=(",", ":")).encode("utf-8")
        self.send_response(answer.status)
        if answer.obj is not None:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        for name, value in answer.headers:
            self.send_header(name, value)
        # Answers may describe PHI-bearing faxes: nothing on the way may keep them.
        self.send_header("Cache-Control", "no-store")
        if self._unread_body:
            # The body is still on the wire, and the next "request" would be read from it: close instead.
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body and getattr(self, "command", None) != "HEAD":
            self.wfile.write(body)


class _Answer:
    """A response to write: status, JSON body (``None`` for none) and extra headers."""

    __slots__ = ("status", "obj", "headers")

    def __init__(self, status: int, obj: Any, headers: Iterable[Tuple[str, str]] = ()):
        self.status = status
        self.obj = obj
        self.headers = list(headers)


class _ClientGone(Exception):
    """The client closed the connection or stalled before sending the whole body."""


def _error_answer(status: int, kind: str, message: str, headers: Iterable[Tuple[str, str]] = ()) -> _Answer:
    return _Answer(status, {"error": {"kind": kind, "message": mask_numbers(message)}}, headers)


def _fax_answer(answer: Any, op: str) -> _Answer:
    if not isinstance(answer, FaxAnswer):
        logger.error("plugin %s returned %s, not a FaxAnswer", op, type(answer).__name__)
        raise _Refusal(503, UNAVAILABLE, INTERNAL_ERROR)
    return _Answer(200, answer.to_json())


class PluginServer(ThreadingHTTPServer):
    """The HTTP server for one plugin; made by :func:`make_server`. ``server_address`` holds the real port."""

    daemon_threads = True

    def __init__(self, address: Tuple[str, int], plugin: Plugin, manifest: Manifest, token: Optional[str],
                 max_body_bytes: int):
        self.plugin = plugin
        self.manifest = manifest
        self.manifest_json = manifest.to_json()
        self.token_bytes = None if token is None else token.encode("utf-8")
        self.max_body_bytes = max_body_bytes
        self.webhook_limit = webhook_body_limit(manifest)
        super().__init__(address, PluginRequestHandler)

    @property
    def url(self) -> str:
        """``http://host:port`` with the bound port."""
        host, port = str(self.server_address[0]), int(self.server_address[1])
        return "http://%s:%d" % ("[%s]" % host if ":" in host else host, port)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host up in DNS (socket.getfqdn) only to fill server_name, which
        # nothing here uses; on a pod without DNS that lookup alone can stall start-up.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback with the exception's message to stderr; log its type only.
        exc = sys.exc_info()[1]
        logger.debug("connection error: %s", type(exc).__name__ if exc else "unknown")


class _PluginServer6(PluginServer):
    address_family = socket.AF_INET6


def make_server(plugin: Plugin, host: str = "127.0.0.1", port: int = 8090, token: Optional[str] = None,
                max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> PluginServer:
    """Check the plugin's manifest and bind a server for it (not yet serving: call ``serve_forever``).

    Raises :class:`~faxbot_plugin_kit.ManifestError` with every problem when the manifest is invalid, so a
    plugin the server would refuse never starts. ``port=0`` binds a free port (see ``server_address``).
    ``token=None`` serves without authentication (for local development); an empty token is refused because
    it almost always means an unset variable, not a wish to run open.
    """
    if not isinstance(plugin, Plugin):
        raise TypeError("plugin must be a faxbot_plugin_kit.Plugin")
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError("token must be a non-empty string, or None to serve without one")
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 1:
        raise ValueError("max_body_bytes must be a positive int")
    manifest = plugin.manifest()
    problems = validate_manifest(manifest)
    if problems:
        raise ManifestError(problems)
    cls = _PluginServer6 if ":" in host else PluginServer
    return cls((host, port), plugin, manifest, token, max_body_bytes)


class _Stop(Exception):
    pass


def serve(plugin: Plugin, host: str = "127.0.0.1", port: int = 8090, token: Optional[str] = None,
          max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
          ready: Optional[Callable[[PluginServer], None]] = None) -> None:
    """Serve ``plugin`` until SIGTERM or Ctrl-C.

    Once bound it prints one line, ``listening on http://HOST:PORT`` with the real port, to stdout (or calls
    ``ready(server)`` instead, when given), so a supervisor or a test can wait for it and learn the port.
    On SIGTERM (a pod stopping) it stops accepting and returns.
    """
    server = make_server(plugin, host, port, token=token, max_body_bytes=max_body_bytes)
    previous = None
    on_main_thread = threading.current_thread() is threading.main_thread()
    if on_main_thread:
        def stop(signum: int, frame: Any) -> None:
            raise _Stop()
        previous = signal.signal(signal.SIGTERM, stop)
    try:
        if ready is not None:
            ready(server)
        else:
            print("listening on %s" % server.url, flush=True)
        server.serve_forever()
    except (_Stop, KeyboardInterrupt):
        pass
    finally:
        server.server_close()
        if on_main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)
