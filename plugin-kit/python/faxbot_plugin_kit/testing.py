"""A mock of the Faxbot server for plugin authors' unit tests.

:class:`MockFaxbot` serves a plugin with the kit's real HTTP server on a free loopback port and calls it the
way the Faxbot server does (Bearer token, ``Faxbot-Plugin-Protocol: 1``, the protocol's JSON), so a test
exercises the plugin exactly as it will run, HTTP included::

    with MockFaxbot(MyPlugin(), token="t") as faxbot:
        sent = faxbot.send("+15555550100")
        assert sent.status == 200
        assert faxbot.status(sent.json["providerId"]).json["status"] == "delivered"
"""

from __future__ import annotations

import base64
import http.client
import json
import threading
import uuid
from typing import Any, Dict, Iterable, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote

from .plugin import Plugin
from .server import DEFAULT_MAX_BODY_BYTES, PluginServer, make_server
from .simulated import SIGNATURE_HEADER, sign_sim_webhook
from .types import PROTOCOL_HEADER, PROTOCOL_VERSION

__all__ = ["MockFaxbot", "MockResponse", "SAMPLE_PDF", "SIGNATURE_HEADER", "sign_sim_webhook", "signed_sim_callback"]

SAMPLE_PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
"""A tiny stand-in document (the plugin kit does not parse it; a real provider would)."""


class MockResponse:
    """What the plugin answered: ``status`` (HTTP status), ``json`` (parsed body, ``None`` when empty or not
    JSON), ``headers`` (lower-case names) and the raw ``body``."""

    def __init__(self, status: int, headers: Dict[str, str], body: bytes):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json: Any = json.loads(body.decode("utf-8")) if body else None
        except ValueError:
            self.json = None

    @property
    def kind(self) -> Optional[str]:
        """The error kind of an error answer, else ``None``."""
        error = self.json.get("error") if isinstance(self.json, dict) else None
        kind = error.get("kind") if isinstance(error, dict) else None
        return kind if isinstance(kind, str) else None

    def __repr__(self) -> str:
        return "MockResponse(status=%d, json=%r)" % (self.status, self.json)


class MockFaxbot:
    """Serves ``plugin`` on 127.0.0.1 (a free port) in a background thread and calls it as the server would.

    Use it as a context manager (or call :meth:`start` and :meth:`close`). ``token`` configures both sides:
    the plugin's server requires it and every call presents it, unless a call says ``authorize=False``.
    ``max_body_bytes`` is the server's ``send`` limit (lower it to test refusals cheaply).
    """

    def __init__(self, plugin: Plugin, token: Optional[str] = None, timeout: float = 10.0,
                 max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
        self.plugin = plugin
        self.token = token
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.server: Optional[PluginServer] = None
        self._thread: Optional[threading.Thread] = None

    # -- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> "MockFaxbot":
        """Bind and serve (raises the kit's ``ManifestError`` for an invalid manifest, as serving would)."""
        if self.server is not None:
            return self
        self.server = make_server(self.plugin, "127.0.0.1", 0, token=self.token,
                                  max_body_bytes=self.max_body_bytes)
        # A short poll interval makes close() (shutdown waits for the next poll) quick in every test.
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="mock-faxbot", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(self.timeout)
        self.server = None
        self._thread = None

    def __enter__(self) -> "MockFaxbot":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _started(self) -> PluginServer:
        if self.server is None:
            raise RuntimeError("MockFaxbot is not started")
        return self.server

    @property
    def port(self) -> int:
        return int(self._started().server_address[1])

    @property
    def url(self) -> str:
        """The plugin's base URL, ``http://127.0.0.1:<port>``."""
        return "http://127.0.0.1:%d" % self.port

    # -- the server's calls ------------------------------------------------------------------------------

    def manifest(self) -> MockResponse:
        return self.request("GET", "/v1/manifest")

    def health(self) -> MockResponse:
        return self.request("GET", "/v1/health")

    def send(self, to: str, document: Optional[bytes] = SAMPLE_PDF, idempotency_key: Optional[str] = None,
             job_id: Optional[str] = None, pages: Optional[int] = None) -> MockResponse:
        """``POST /v1/send``. ``job_id`` defaults to a fresh id and ``idempotency_key`` to the job id, as the
        server does; pass the same key twice to test idempotency. ``document=None`` sends none."""
        job_id = job_id or uuid.uuid4().hex[:16]
        body: Dict[str, Any] = {"jobId": job_id, "to": to, "idempotencyKey": idempotency_key or job_id}
        if pages is not None:
            body["pages"] = pages
        if document is not None:
            body["document"] = {"contentType": "application/pdf",
                                "base64": base64.b64encode(document).decode("ascii")}
        return self.request("POST", "/v1/send", body=body)

    def status(self, provider_id: str) -> MockResponse:
        return self.request("GET", "/v1/faxes/%s" % _quote(provider_id))

    def cancel(self, provider_id: str) -> MockResponse:
        return self.request("POST", "/v1/faxes/%s/cancel" % _quote(provider_id))

    def webhook(self, body: bytes, headers: Union[Mapping[str, str], Iterable[Tuple[str, str]]],
                url: Optional[str] = None) -> MockResponse:
        """``POST /v1/webhook`` with a provider callback as the server forwards it: the raw ``body``, the
        callback's ``headers`` (names lower-cased, order kept) and the ``url`` the provider called (by
        default the server's ``/webhooks/<plugin id>``)."""
        pairs = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
        if url is None:
            server = self._started()
            url = "https://faxbot.example/webhooks/%s" % server.manifest.id
        payload = {
            "url": url,
            "headers": [[k.lower(), v] for k, v in pairs],
            "bodyBase64": base64.b64encode(body).decode("ascii"),
        }
        return self.request("POST", "/v1/webhook", body=payload)

    def request(self, method: str, path: str, body: Union[None, bytes, Any] = None,
                headers: Optional[Mapping[str, str]] = None, authorize: bool = True) -> MockResponse:
        """Any request, for tests of what the server would never send. ``body`` bytes go as they are, other
        values as JSON; ``headers`` add to (or, by name, replace) the server's usual ones."""
        sent: Dict[str, Union[str, bytes]] = {PROTOCOL_HEADER: str(PROTOCOL_VERSION)}
        if authorize and self.token is not None:
            # As UTF-8 bytes, as the server sends it (http.client would encode a str as Latin-1).
            sent["Authorization"] = ("Bearer %s" % self.token).encode("utf-8")
        data: Optional[bytes] = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
            sent["Content-Type"] = "application/json"
        for name, value in (headers or {}).items():
            for existing in [k for k in sent if k.lower() == name.lower()]:
                del sent[existing]
            sent[name] = value
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request(method, path, body=data, headers=sent)
            resp = conn.getresponse()
            raw = resp.read()
            return MockResponse(resp.status, {k.lower(): v for k, v in resp.getheaders()}, raw)
        finally:
            conn.close()


def _quote(provider_id: str) -> str:
    return quote(provider_id, safe="")


def signed_sim_callback(secret: Union[str, bytes], provider_id: str, status: str,
                        error: Optional[str] = None) -> Tuple[bytes, List[Tuple[str, str]]]:
    """A simulated provider's callback body and headers, signed with ``secret``: pass them to
    :meth:`MockFaxbot.webhook`."""
    doc: Dict[str, Any] = {"providerId": provider_id, "status": status}
    if error is not None:
        doc["error"] = error
    body = json.dumps(doc).encode("utf-8")
    return body, [("content-type", "application/json"), (SIGNATURE_HEADER, sign_sim_webhook(secret, body))]
