"""Shared by the kit's tests: the import path, a manifest that passes, and a plugin whose answers a test sets.

The tests import the kit from this source tree (not an installed copy), so they test the code beside them.
"""

import os
import socket
import sys
from typing import Any, Callable, List, Optional

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from faxbot_plugin_kit import FaxAnswer, Manifest, Plugin, SendRequest, WebhookRequest, WebhookSpec  # noqa: E402

NUMBER = "+15551234567"
"""A destination that must never come back in an answer or a log."""
NUMBER_DIGITS = "5551234567"


def good_manifest(**changes: Any) -> Manifest:
    fields = dict(
        id="acme-fax",
        name="Acme Fax",
        version="0.1.0",
        hipaa_compliant=True,
        capabilities=("send", "status", "cancel", "webhook"),
        idempotent=True,
        needs_document=True,
        poll_interval_ms=5000,
        webhook=WebhookSpec("HMAC-SHA256 of the body in X-Acme-Signature", 1 << 20),
    )
    fields.update(changes)
    return Manifest(**fields)


class FakePlugin(Plugin):
    """Records what it was called with and answers with ``self.answer`` (a value, or a callable taking the
    request / provider id, which may raise)."""

    def __init__(self, manifest: Optional[Manifest] = None):
        self._manifest = manifest or good_manifest()
        self.calls: List[Any] = []
        self.answer: Any = FaxAnswer("p-1", "in_progress", check_after_ms=2000)
        self.health_answer: Any = None
        self.events: Any = []

    def manifest(self) -> Manifest:
        return self._manifest

    def _reply(self, value: Any, arg: Any) -> Any:
        return value(arg) if callable(value) else value

    def health(self) -> Optional[str]:
        return self._reply(self.health_answer, None)

    def send(self, req: SendRequest) -> FaxAnswer:
        self.calls.append(("send", req))
        return self._reply(self.answer, req)

    def status(self, provider_id: str) -> FaxAnswer:
        self.calls.append(("status", provider_id))
        return self._reply(self.answer, provider_id)

    def cancel(self, provider_id: str) -> None:
        self.calls.append(("cancel", provider_id))
        if callable(self.answer):
            self.answer(provider_id)

    def webhook(self, req: WebhookRequest) -> List[FaxAnswer]:
        self.calls.append(("webhook", req))
        return self._reply(self.events, req)


def raiser(exc: BaseException) -> Callable[[Any], Any]:
    def go(_: Any) -> Any:
        raise exc
    return go


def raw_exchange(port: int, head: bytes, body: bytes = b"", timeout: float = 5.0) -> bytes:
    """Send ``head`` (request line and headers, ending in a blank line) and ``body``, then read until the
    server closes or the timeout passes. Used where http.client would fix up what the test means to send."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head + body)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except socket.timeout:
            pass
        return b"".join(chunks)
