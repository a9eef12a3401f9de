"""The protocol's messages as Python values, and their JSON form (camelCase, as ``docs/plugin-protocol.yaml``).

The dataclasses are what a plugin author handles: ``send`` receives a :class:`SendRequest` whose document is
already decoded bytes, and returns a :class:`FaxAnswer`. Parsing from JSON is strict (unknown fields, wrong
types and bad base64 are refused) because a lenient parser would turn a server/plugin version mismatch into a
silently wrong fax instead of a loud 400. The ``repr`` of anything holding a number or a document shows
neither: they are PHI, and a ``repr`` ends up in logs and tracebacks.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .phi import mask_numbers

PROTOCOL_VERSION = 1
"""The protocol version this kit speaks; a manifest must name it."""

PROTOCOL_HEADER = "Faxbot-Plugin-Protocol"
"""Request header with which the server names the protocol version on every call."""

# Error kinds: what went wrong, and so what the server does next.
BAD_REQUEST = "bad_request"
"""400: the server's request was malformed (a bug; not retried)."""
UNAUTHENTICATED = "unauthenticated"
"""401: no or wrong plugin token, or (on ``webhook``) a callback that is not authentic."""
CREDENTIALS = "credentials"
"""502: the provider refused the plugin's credentials (not retried; an operator must fix them)."""
REJECTED = "rejected"
"""422: the provider refused this fax (bad number, bad document; not retried)."""
NOT_FOUND = "not_found"
"""404: no such fax."""
RATE_LIMITED = "rate_limited"
"""429: the provider's rate limit; retried after ``retry_after_ms``."""
UNAVAILABLE = "unavailable"
"""503: the provider is unavailable, or nothing was sent; retried."""
UNSUPPORTED = "unsupported"
"""501: the plugin does not support this operation."""

KIND_STATUS: Dict[str, int] = {
    BAD_REQUEST: 400,
    UNAUTHENTICATED: 401,
    CREDENTIALS: 502,
    REJECTED: 422,
    NOT_FOUND: 404,
    RATE_LIMITED: 429,
    UNAVAILABLE: 503,
    UNSUPPORTED: 501,
}
"""The HTTP status a plugin answers with for each error kind (``ErrorKind::status`` in the contract)."""

ERROR_KINDS = frozenset(KIND_STATUS)

# Capabilities a manifest may list.
CAP_SEND = "send"
CAP_STATUS = "status"
CAP_CANCEL = "cancel"
CAP_WEBHOOK = "webhook"
CAPABILITIES = (CAP_SEND, CAP_STATUS, CAP_CANCEL, CAP_WEBHOOK)

# Fax states.
QUEUED = "queued"
IN_PROGRESS = "in_progress"
DELIVERED = "delivered"
FAILED = "failed"
FAX_STATES = (QUEUED, IN_PROGRESS, DELIVERED, FAILED)
FINAL_STATES = frozenset((DELIVERED, FAILED))

DEFAULT_WEBHOOK_BYTES = 1024 * 1024
"""``webhook.maxBytes`` when a manifest does not say."""
WEBHOOK_MAX_BYTES = 32 * 1024 * 1024
"""Largest callback body a plugin may ask for."""

PDF = "application/pdf"


class PluginError(Exception):
    """A failure the server should act on: raise it from any :class:`~faxbot_plugin_kit.Plugin` method.

    ``kind`` decides what the server does (``rate_limited`` and ``unavailable`` are retried, after
    ``retry_after_ms`` when given; everything else fails the job or refuses the callback). ``message`` is for
    people and must not hold the number or document content; the kit masks digit runs before sending it
    anyway. Any other exception a plugin raises is answered as ``unavailable`` with a fixed message, because
    its text may hold PHI.
    """

    def __init__(self, kind: str, message: str, retry_after_ms: Optional[int] = None):
        if kind not in ERROR_KINDS:
            raise ValueError("unknown error kind %r; use one of %s" % (kind, ", ".join(sorted(ERROR_KINDS))))
        if retry_after_ms is not None and (not _is_int(retry_after_ms) or retry_after_ms < 0):
            raise ValueError("retry_after_ms must be a non-negative int or None")
        super().__init__(kind, message, retry_after_ms)
        self.kind = kind
        self.message = str(message)
        self.retry_after_ms = retry_after_ms

    @property
    def http_status(self) -> int:
        """The HTTP status this error is answered with."""
        return KIND_STATUS[self.kind]

    def to_json(self) -> Dict[str, Any]:
        """The protocol's ``Error`` body, with the message masked."""
        detail: Dict[str, Any] = {"kind": self.kind, "message": mask_numbers(self.message)}
        if self.retry_after_ms is not None:
            detail["retryAfterMs"] = self.retry_after_ms
        return {"error": detail}

    def __str__(self) -> str:
        # Masked here too: an author who logs the exception should not log a number by accident.
        return "%s: %s" % (self.kind, mask_numbers(self.message))

    def __repr__(self) -> str:
        return "PluginError(%r, %r, retry_after_ms=%r)" % (self.kind, mask_numbers(self.message), self.retry_after_ms)


class ShapeError(ValueError):
    """A JSON document does not have the protocol's shape. Its message names fields, never values."""


def _is_int(value: Any) -> bool:
    # JSON booleans arrive as Python bools, which are ints; the protocol's integers are not booleans.
    return isinstance(value, int) and not isinstance(value, bool)


def _object(value: Any, what: str, allowed: Sequence[str], required: Sequence[str]) -> Dict[str, Any]:
    if not isinstance(value, dict):
        raise ShapeError("%s must be a JSON object" % what)
    unknown = [k for k in value if k not in allowed]
    if unknown:
        # The names themselves are input and are not echoed.
        raise ShapeError("%s has fields the protocol does not define" % what)
    for key in required:
        if key not in value:
            raise ShapeError("%s needs `%s`" % (what, key))
    return value


def _string(obj: Dict[str, Any], key: str, what: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise ShapeError("%s `%s` must be a string" % (what, key))
    return value


def decode_base64(text: str, what: str) -> bytes:
    """Decode standard, padded, canonical base64, refusing anything else.

    Python's own ``validate=True`` checks the alphabet but lets surplus padding and non-zero trailing bits
    through; the server's Rust decoder refuses both, and the two sides must agree on what a document is.
    """
    bad = ShapeError("%s is not valid base64" % what)
    if len(text) % 4:
        raise bad
    pad = len(text) - len(text.rstrip("="))
    if pad > 2:
        raise bad
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise bad from None
    if text:
        # Canonical: the last quantum must be what encoding its bytes gives (no stray trailing bits).
        last = data[len(data) - (3 - pad):]
        if base64.b64encode(last).decode("ascii") != text[-4:]:
            raise bad
    return data


@dataclass(frozen=True)
class WebhookSpec:
    """How the plugin authenticates its provider's callbacks (manifest section ``webhook``)."""

    verification: str
    """The scheme in words, shown to operators (e.g. "HMAC-SHA256 of the body in X-Sim-Signature"); not
    ``none``."""
    max_bytes: int = DEFAULT_WEBHOOK_BYTES
    """Largest callback body the plugin expects; the server refuses larger ones before reading them."""

    def to_json(self) -> Dict[str, Any]:
        return {"verification": self.verification, "maxBytes": self.max_bytes}


@dataclass(frozen=True)
class Manifest:
    """``GET /v1/manifest``: who the plugin is and what it can do. Checked by :func:`validate_manifest`."""

    id: str
    """2–63 lower-case letters, digits or ``-``, starting with a letter; not a built-in plugin's id."""
    name: str
    version: str
    hipaa_compliant: bool
    """Whether the provider signs a BAA and the plugin keeps PHI out of its own logs."""
    capabilities: Tuple[str, ...]
    """``send`` and ``status`` always; ``cancel`` and ``webhook`` optionally."""
    idempotent: bool
    """Whether a repeated ``send`` with the same idempotency key returns the first fax. Only then does the
    server repeat a submission whose answer it never saw."""
    needs_document: bool
    """Whether ``send`` needs the document bytes (otherwise it receives none)."""
    poll_interval_ms: int
    """How often the server polls ``status`` for a fax in progress (1000–3600000)."""
    webhook: Optional[WebhookSpec] = None
    """Required with the ``webhook`` capability, refused without it."""
    protocol: int = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        # Accept any sequence (a list is the natural literal) but keep the manifest immutable and hashable.
        if isinstance(self.capabilities, (list, tuple)):
            object.__setattr__(self, "capabilities", tuple(self.capabilities))

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {
            "protocol": self.protocol,
            "id": self.id,
            "name": self.name,
            "version": self.version,
            "hipaaCompliant": self.hipaa_compliant,
            "capabilities": list(self.capabilities),
            "idempotent": self.idempotent,
            "needsDocument": self.needs_document,
            "pollIntervalMs": self.poll_interval_ms,
        }
        if self.webhook is not None:
            out["webhook"] = self.webhook.to_json()
        return out

    @classmethod
    def from_json(cls, value: Any) -> "Manifest":
        """Parse a manifest document (for tests and tools; a plugin builds its manifest in code)."""
        keys = ("protocol", "id", "name", "version", "hipaaCompliant", "capabilities", "idempotent",
                "needsDocument", "pollIntervalMs", "webhook")
        obj = _object(value, "the manifest", keys, keys[:-1])
        hook = obj.get("webhook")
        spec = None
        if hook is not None:
            hook = _object(hook, "the manifest's webhook", ("verification", "maxBytes"), ("verification",))
            spec = WebhookSpec(hook["verification"], hook.get("maxBytes", DEFAULT_WEBHOOK_BYTES))
        caps = obj["capabilities"]
        if not isinstance(caps, list):
            raise ShapeError("the manifest's `capabilities` must be a list")
        return cls(
            id=obj["id"],
            name=obj["name"],
            version=obj["version"],
            hipaa_compliant=obj["hipaaCompliant"],
            capabilities=tuple(caps),
            idempotent=obj["idempotent"],
            needs_document=obj["needsDocument"],
            poll_interval_ms=obj["pollIntervalMs"],
            webhook=spec,
            protocol=obj["protocol"],
        )


@dataclass(frozen=True, repr=False)
class Document:
    """A document in a request: always a PDF in protocol version 1, as decoded bytes."""

    content_type: str
    data: bytes

    def __repr__(self) -> str:
        return "Document(content_type=%r, %d bytes)" % (self.content_type, len(self.data))

    def to_json(self) -> Dict[str, Any]:
        return {"contentType": self.content_type, "base64": base64.b64encode(self.data).decode("ascii")}

    @classmethod
    def from_json(cls, value: Any) -> "Document":
        obj = _object(value, "the document", ("contentType", "base64"), ("contentType", "base64"))
        content_type = _string(obj, "contentType", "the document's")
        if content_type != PDF:
            raise ShapeError("the document's `contentType` must be %s" % PDF)
        return cls(content_type, decode_base64(_string(obj, "base64", "the document's"), "the document"))


@dataclass(frozen=True, repr=False)
class SendRequest:
    """``POST /v1/send``: submit a fax."""

    job_id: str
    """The server's job id (safe to log)."""
    to: str
    """Destination in E.164. PHI: never log it, never put it in an error message."""
    idempotency_key: str
    """The same for every attempt of one job."""
    pages: Optional[int] = None
    document: Optional[Document] = None
    """The document, when the manifest says ``needsDocument``."""

    def __repr__(self) -> str:
        return "SendRequest(job_id=%r, to=%r, pages=%r, document=%r)" % (
            self.job_id, mask_numbers(self.to), self.pages, self.document)

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"jobId": self.job_id, "to": self.to, "idempotencyKey": self.idempotency_key}
        if self.pages is not None:
            out["pages"] = self.pages
        if self.document is not None:
            out["document"] = self.document.to_json()
        return out

    @classmethod
    def from_json(cls, value: Any) -> "SendRequest":
        what = "the send request"
        obj = _object(value, what, ("jobId", "to", "idempotencyKey", "pages", "document"),
                      ("jobId", "to", "idempotencyKey"))
        pages = obj.get("pages")
        if pages is not None and not _is_int(pages):
            raise ShapeError("%s's `pages` must be an integer or null" % what)
        doc = obj.get("document")
        return cls(
            job_id=_string(obj, "jobId", what + "'s"),
            to=_string(obj, "to", what + "'s"),
            idempotency_key=_string(obj, "idempotencyKey", what + "'s"),
            pages=pages,
            document=None if doc is None else Document.from_json(doc),
        )


@dataclass(frozen=True)
class FaxAnswer:
    """The answer to ``send`` and ``status``, and one event of a callback: the provider's view of a fax.

    Checked on construction, so a plugin bug shows up where it is made rather than as a confusing answer.
    """

    provider_id: str
    """The provider's id of the fax (not PHI; used in URLs): 1–200 characters."""
    status: str
    """``queued``, ``in_progress``, ``delivered`` or ``failed``."""
    error: Optional[str] = None
    """Why it failed, for ``failed``: no numbers (the kit masks digit runs before sending it)."""
    check_after_ms: Optional[int] = None
    """When the provider expects a final state, in milliseconds from now (the server's first poll)."""

    def __post_init__(self) -> None:
        if not isinstance(self.provider_id, str) or not 1 <= len(self.provider_id) <= 200:
            raise ValueError("FaxAnswer.provider_id must be a string of 1-200 characters")
        if self.status not in FAX_STATES:
            raise ValueError("FaxAnswer.status must be one of %s" % ", ".join(FAX_STATES))
        if self.error is not None and not isinstance(self.error, str):
            raise ValueError("FaxAnswer.error must be a string or None")
        if self.check_after_ms is not None and (not _is_int(self.check_after_ms) or self.check_after_ms < 0):
            raise ValueError("FaxAnswer.check_after_ms must be a non-negative int or None")

    def to_json(self) -> Dict[str, Any]:
        out: Dict[str, Any] = {"providerId": self.provider_id, "status": self.status}
        if self.error is not None:
            out["error"] = mask_numbers(self.error)
        if self.check_after_ms is not None:
            out["checkAfterMs"] = self.check_after_ms
        return out

    @classmethod
    def from_json(cls, value: Any) -> "FaxAnswer":
        obj = _object(value, "the fax answer", ("providerId", "status", "error", "checkAfterMs"),
                      ("providerId", "status"))
        try:
            return cls(obj["providerId"], obj["status"], obj.get("error"), obj.get("checkAfterMs"))
        except ValueError:
            raise ShapeError("the fax answer does not have the protocol's shape") from None


@dataclass(frozen=True, repr=False)
class WebhookRequest:
    """``POST /v1/webhook``: a provider callback exactly as the server received it.

    Authenticate it (signature over :attr:`body`, usually) before trusting any field.
    """

    url: str
    """The full URL the provider called."""
    headers: List[Tuple[str, str]] = field(default_factory=list)
    """Header names (lower-case) and values, in the order received."""
    body: bytes = b""
    """The raw body, decoded from the request's ``bodyBase64``."""

    def header(self, name: str) -> Optional[str]:
        """The value of the only header called ``name`` (case-insensitive); ``None`` when it is absent or
        repeated, because a repeated signature header is ambiguous and must not be trusted."""
        values = self.header_values(name)
        return values[0] if len(values) == 1 else None

    def header_values(self, name: str) -> List[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        wanted = name.lower()
        return [v for k, v in self.headers if k.lower() == wanted]

    def __repr__(self) -> str:
        return "WebhookRequest(url=%r, %d headers, %d body bytes)" % (
            mask_numbers(self.url), len(self.headers), len(self.body))

    def to_json(self) -> Dict[str, Any]:
        return {
            "url": self.url,
            "headers": [[k, v] for k, v in self.headers],
            "bodyBase64": base64.b64encode(self.body).decode("ascii"),
        }

    @classmethod
    def from_json(cls, value: Any) -> "WebhookRequest":
        what = "the webhook request"
        obj = _object(value, what, ("url", "headers", "bodyBase64"), ("url", "headers", "bodyBase64"))
        headers = obj["headers"]
        if not isinstance(headers, list) or not all(
            isinstance(h, list) and len(h) == 2 and isinstance(h[0], str) and isinstance(h[1], str)
            for h in headers
        ):
            raise ShapeError("%s's `headers` must be a list of [name, value] string pairs" % what)
        return cls(
            url=_string(obj, "url", what + "'s"),
            headers=[(k, v) for k, v in headers],
            body=decode_base64(_string(obj, "bodyBase64", what + "'s"), "the callback body"),
        )


def retry_after_seconds(retry_after_ms: int) -> int:
    """``Retry-After`` in whole seconds, rounded up so a client never retries earlier than asked."""
    return -(-retry_after_ms // 1000)
