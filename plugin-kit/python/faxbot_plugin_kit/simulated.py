"""An in-memory fax provider that honours the conformance numbers, for skeletons, tests and the conformance
suite.

A new plugin delegates to it until its author writes the calls to the real provider, so the plugin passes the
conformance suite from its first minute; plugin tests can use it as the "provider" side too. The last four
digits of ``to`` choose what happens (``contract/src/sidecar.rs``, module ``scenario``):

========  =====================================================================
``0101``  accepted, then fails in transmission
``0102``  refused at send (``rejected``)
``0103``  busy at send (``unavailable``, retry after one second)
other     delivered (``0100`` is the conformance suite's number for it)
========  =====================================================================
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from typing import Dict, List, Optional, Union

from .types import (
    BAD_REQUEST,
    DELIVERED,
    FAILED,
    FINAL_STATES,
    IN_PROGRESS,
    NOT_FOUND,
    REJECTED,
    UNAUTHENTICATED,
    UNAVAILABLE,
    FaxAnswer,
    PluginError,
    SendRequest,
    WebhookRequest,
)

SIGNATURE_HEADER = "x-sim-signature"
"""The callback header that carries the lowercase hex HMAC-SHA256 of the raw body."""

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
"""What the simulated provider accepts as a destination."""

FAILURE_REASON = "no answer from the receiving fax machine"
REFUSED_REASON = "the provider refused the destination"
BUSY_REASON = "the provider is busy"
BUSY_RETRY_AFTER_MS = 1000
CANCELLED_REASON = "cancelled"
CALLBACK_FAILURE_REASON = "transmission failed"

_CALLBACK_KEYS = frozenset(("providerId", "status", "error"))


def sign_sim_webhook(secret: Union[str, bytes], body: bytes) -> str:
    """The ``x-sim-signature`` value the simulated provider expects for ``body``: lowercase hex
    HMAC-SHA256 of the raw body keyed with ``secret``."""
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    return hmac.new(key, body, hashlib.sha256).hexdigest()


class _Fax:
    __slots__ = ("provider_id", "fails", "status", "error")

    def __init__(self, provider_id: str, fails: bool):
        self.provider_id = provider_id
        self.fails = fails
        self.status = IN_PROGRESS
        self.error: Optional[str] = None

    def answer(self, check_after_ms: Optional[int] = None) -> FaxAnswer:
        return FaxAnswer(self.provider_id, self.status, self.error, check_after_ms)

    def finish(self, status: str, error: Optional[str]) -> None:
        self.status = status
        self.error = error if status == FAILED else None


class SimulatedProvider:
    """A thread-safe in-memory provider with the methods of a :class:`~faxbot_plugin_kit.Plugin`'s operations.

    A fax stays ``in_progress`` until someone asks for its status, which then answers its final state (there
    is no clock: tests stay deterministic and fast). Faxes live as long as the object.
    """

    def __init__(self, webhook_secret: Optional[Union[str, bytes]] = None):
        """``webhook_secret`` keys the callback signature; without one every callback is refused as
        unauthenticated (a provider whose callbacks cannot be verified must not be trusted)."""
        if isinstance(webhook_secret, str):
            webhook_secret = webhook_secret.encode("utf-8")
        self._secret = webhook_secret or None
        self._lock = threading.Lock()
        self._faxes: Dict[str, _Fax] = {}
        self._by_key: Dict[str, str] = {}
        self._next = 1

    def send(self, req: SendRequest) -> FaxAnswer:
        """Accept a fax (``in_progress``, poll at once) or refuse it by the number's last four digits.

        A repeated idempotency key answers the fax the first call created, in its current state, and sends
        nothing; refused sends create nothing, so repeating one is refused again.
        """
        with self._lock:
            known = self._by_key.get(req.idempotency_key)
            if known is not None:
                fax = self._faxes[known]
                return fax.answer(0 if fax.status not in FINAL_STATES else None)
            if not E164.fullmatch(req.to):
                raise PluginError(REJECTED, "invalid destination")
            if req.to.endswith("0102"):
                raise PluginError(REJECTED, REFUSED_REASON)
            if req.to.endswith("0103"):
                raise PluginError(UNAVAILABLE, BUSY_REASON, retry_after_ms=BUSY_RETRY_AFTER_MS)
            provider_id = "sim-%d" % self._next
            self._next += 1
            fax = _Fax(provider_id, fails=req.to.endswith("0101"))
            self._faxes[provider_id] = fax
            self._by_key[req.idempotency_key] = provider_id
            return fax.answer(check_after_ms=0)

    def status(self, provider_id: str) -> FaxAnswer:
        """The fax's final state: an unfinished one finishes now (delivered, or failed with the reason)."""
        with self._lock:
            fax = self._find(provider_id)
            if fax.status not in FINAL_STATES:
                if fax.fails:
                    fax.finish(FAILED, FAILURE_REASON)
                else:
                    fax.finish(DELIVERED, None)
            return fax.answer()

    def cancel(self, provider_id: str) -> None:
        """Stop an unfinished fax (it becomes ``failed``, "cancelled"); a finished one is left as it is."""
        with self._lock:
            fax = self._find(provider_id)
            if fax.status not in FINAL_STATES:
                fax.finish(FAILED, CANCELLED_REASON)

    def webhook(self, req: WebhookRequest) -> List[FaxAnswer]:
        """Verify a callback's signature, then report the one status change it carries.

        The body is ``{"providerId", "status": "delivered"|"failed", "error"?}``. An unfinished fax it names
        takes that state; a finished one keeps its own (final means final), and an unknown id is still
        reported, because the server, not the provider, knows which faxes are its own.
        """
        if self._secret is None:
            raise PluginError(UNAUTHENTICATED, "callbacks cannot be verified: no webhook secret is configured")
        given = req.header(SIGNATURE_HEADER)
        expected = sign_sim_webhook(self._secret, req.body)
        try:
            given_bytes = (given or "").encode("ascii")
        except UnicodeEncodeError:
            given_bytes = b""
        if given is None or not hmac.compare_digest(given_bytes, expected.encode("ascii")):
            raise PluginError(UNAUTHENTICATED, "callback signature missing or wrong")
        event = _parse_callback(req.body)
        with self._lock:
            fax = self._faxes.get(event.provider_id)
            if fax is not None and fax.status not in FINAL_STATES:
                fax.finish(event.status, event.error)
        return [event]

    def _find(self, provider_id: str) -> _Fax:
        fax = self._faxes.get(provider_id)
        if fax is None:
            raise PluginError(NOT_FOUND, "no such fax")
        return fax


def _parse_callback(body: bytes) -> FaxAnswer:
    malformed = PluginError(BAD_REQUEST, "the callback body is not a simulated provider's status report")
    try:
        doc = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        raise malformed from None
    if not isinstance(doc, dict) or not set(doc) <= _CALLBACK_KEYS:
        raise malformed
    provider_id, status, error = doc.get("providerId"), doc.get("status"), doc.get("error")
    if not isinstance(provider_id, str) or not 1 <= len(provider_id) <= 200:
        raise malformed
    if status not in (DELIVERED, FAILED) or not (error is None or isinstance(error, str)):
        raise malformed
    if status == FAILED:
        return FaxAnswer(provider_id, FAILED, error or CALLBACK_FAILURE_REASON)
    return FaxAnswer(provider_id, DELIVERED)
