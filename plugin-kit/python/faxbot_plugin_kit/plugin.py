"""The class a plugin author subclasses: one method per protocol operation, the HTTP side left to the kit."""

from __future__ import annotations

from typing import List, Optional

from .types import UNSUPPORTED, FaxAnswer, Manifest, PluginError, SendRequest, WebhookRequest


class Plugin:
    """A Faxbot sidecar plugin. Override :meth:`manifest`, :meth:`send` and :meth:`status`; override
    :meth:`cancel` and :meth:`webhook` when the manifest lists those capabilities.

    Methods are called from the server's request threads, possibly at the same time: guard shared state.
    Raise :class:`~faxbot_plugin_kit.PluginError` to answer with an error kind (the server retries
    ``unavailable`` and ``rate_limited``; anything else fails the job). Any other exception is answered as
    ``unavailable`` with a fixed message, so a crash never leaks its text (which may hold PHI) to the server.
    """

    def manifest(self) -> Manifest:
        """Who the plugin is and what it can do. Called once, when the server object is made."""
        raise NotImplementedError("a plugin must define manifest()")

    def health(self) -> Optional[str]:
        """``None`` when the plugin can work; otherwise why not, for people (no PHI).

        Answered on ``GET /v1/health``, which the kubelet probes without a token: keep it cheap (check that
        credentials are present, not that the provider answers every few seconds).
        """
        return None

    def send(self, req: SendRequest) -> FaxAnswer:
        """Submit a fax to the provider and return its id and state.

        ``req.to`` and ``req.document`` are PHI: never log them or put them in an error message. When the
        manifest says ``idempotent``, a repeated ``req.idempotency_key`` must return the fax the first call
        created instead of sending again (the server repeats a submission whose answer it never saw).
        """
        raise NotImplementedError("a plugin must define send()")

    def status(self, provider_id: str) -> FaxAnswer:
        """The provider's current view of fax ``provider_id``; raise ``not_found`` for an unknown id."""
        raise NotImplementedError("a plugin must define status()")

    def cancel(self, provider_id: str) -> None:
        """Ask the provider to stop a fax it has not finished (capability ``cancel``). The final state still
        comes from :meth:`status`."""
        raise PluginError(UNSUPPORTED, "this plugin cannot cancel faxes")

    def webhook(self, req: WebhookRequest) -> List[FaxAnswer]:
        """Authenticate a provider callback, then return the status changes it reports (capability
        ``webhook``). Raise ``unauthenticated`` for anything that cannot be verified, before reading any
        field of it."""
        raise PluginError(UNSUPPORTED, "this plugin takes no callbacks")
