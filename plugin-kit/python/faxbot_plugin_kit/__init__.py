"""Faxbot plugin kit: write a sidecar plugin (protocol v1) by writing only the calls to your fax provider.

Subclass :class:`Plugin`, return a :class:`Manifest`, and hand it to :func:`serve`; the kit answers the
protocol's HTTP routes (``docs/plugin-protocol.yaml``), checks tokens, bounds and parses input, maps
:class:`PluginError` kinds to statuses and masks numbers out of every error message. :class:`SimulatedProvider`
stands in for a provider until the real calls are written, and :mod:`faxbot_plugin_kit.testing` serves a
plugin to tests the way the Faxbot server calls it.
"""

from .manifest import BUILTIN_IDS, ManifestError, validate_manifest
from .phi import mask_numbers
from .plugin import Plugin
from .server import DEFAULT_MAX_BODY_BYTES, PluginServer, make_server, serve, webhook_body_limit
from .simulated import SimulatedProvider, sign_sim_webhook
from .types import (
    BAD_REQUEST,
    CAP_CANCEL,
    CAP_SEND,
    CAP_STATUS,
    CAP_WEBHOOK,
    CREDENTIALS,
    DELIVERED,
    ERROR_KINDS,
    FAILED,
    IN_PROGRESS,
    KIND_STATUS,
    NOT_FOUND,
    PROTOCOL_VERSION,
    QUEUED,
    RATE_LIMITED,
    REJECTED,
    UNAUTHENTICATED,
    UNAVAILABLE,
    UNSUPPORTED,
    Document,
    FaxAnswer,
    Manifest,
    PluginError,
    SendRequest,
    WebhookRequest,
    WebhookSpec,
)

__version__ = "0.1.0"

__all__ = [
    "BAD_REQUEST", "BUILTIN_IDS", "CAP_CANCEL", "CAP_SEND", "CAP_STATUS", "CAP_WEBHOOK", "CREDENTIALS",
    "DEFAULT_MAX_BODY_BYTES", "DELIVERED", "ERROR_KINDS", "FAILED", "IN_PROGRESS", "KIND_STATUS", "NOT_FOUND",
    "PROTOCOL_VERSION", "QUEUED", "RATE_LIMITED", "REJECTED", "UNAUTHENTICATED", "UNAVAILABLE", "UNSUPPORTED",
    "Document", "FaxAnswer", "Manifest", "ManifestError", "Plugin", "PluginError", "PluginServer",
    "SendRequest", "SimulatedProvider", "WebhookRequest", "WebhookSpec", "make_server", "mask_numbers",
    "serve", "sign_sim_webhook", "validate_manifest", "webhook_body_limit",
]
