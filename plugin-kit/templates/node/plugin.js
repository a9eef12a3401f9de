'use strict';
// @@NAME@@: a Faxbot sidecar plugin (protocol v1).
//
// The plugin runs beside the Faxbot API server and is called over the pod's loopback. The server keeps
// every job durable and decides retries and failover; the plugin only talks to its fax provider. Until the
// provider calls are written, it delegates to the kit's SimulatedProvider, which follows the conformance
// numbers, so `npm test` and `faxbot-plugin-conformance` pass from the first run. Each method says what to
// put in its place.
//
// PHI: the destination (`req.to`) and the document are protected health information. Never log them and
// never put them in an error message; the kit masks digit runs in messages, but that is a safety net.

// PluginError and Kind are what the provider calls below throw; imported now so the comments' code runs.
// eslint-disable-next-line no-unused-vars
const { Plugin, PluginError, Kind, SimulatedProvider } = require('faxbot-plugin-kit');

class FaxPlugin extends Plugin {
  /**
   * @param {{webhookSecret?: string | null}} [options] webhookSecret: the key the provider signs its
   *   callbacks with (FAXBOT_PLUGIN_WEBHOOK_SECRET); without it every callback is refused.
   */
  constructor({ webhookSecret = null } = {}) {
    super();
    // Replace with your provider's client, built from its credentials (read them from the environment or a
    // mounted secret in index.js and pass them in here, so tests can pass fakes).
    this.provider = new SimulatedProvider({ webhookSecret });
  }

  manifest() {
    return {
      protocol: 1,
      id: '@@ID@@',
      name: "@@NAME@@",
      version: '0.1.0',
      // true only when the provider has signed a BAA with you and this plugin keeps PHI out of its logs.
      hipaaCompliant: false,
      capabilities: ['send', 'status', 'cancel', 'webhook'],
      // The provider deduplicates submissions by idempotency key, so the server may repeat a send whose
      // answer it never saw. Set false if yours cannot: the server then fails such a job instead.
      idempotent: true,
      needsDocument: true,
      // How often the server asks `status` about a fax in progress.
      pollIntervalMs: 1000,
      // Shown to operators; describe your provider's scheme once it replaces the simulated one.
      webhook: { verification: 'HMAC-SHA256 of the body in X-Sim-Signature' },
    };
  }

  async health() {
    // Answer { status: 'failing', message } when the plugin cannot work (credentials missing, provider
    // unreachable); keep it cheap, the kubelet probes it often. The message must not hold PHI.
    return { status: 'ok' };
  }

  /**
   * @param {import('faxbot-plugin-kit').SendRequest} req
   */
  async send(req) {
    // Real provider: submit req.document.bytes (a PDF) to req.to, passing req.idempotencyKey as the
    // provider's idempotency key, and answer { providerId, status: 'in_progress', checkAfterMs }. Map its
    // failures to the kind that tells the server what to do:
    //   number or document refused        → throw new PluginError(Kind.REJECTED, 'the provider refused the fax')
    //   credentials refused               → Kind.CREDENTIALS (an operator must fix them; not retried)
    //   rate limited                      → Kind.RATE_LIMITED, with retryAfterMs from the provider
    //   outage, connection refused        → Kind.UNAVAILABLE (retried: only when nothing was sent)
    // A timeout after the request went out is ambiguous: let it throw, and the server decides.
    return this.provider.send(req);
  }

  /**
   * @param {string} providerId
   */
  async status(providerId) {
    // Real provider: look the fax up and answer { providerId, status, error? } with status one of queued,
    // in_progress, delivered, failed (error says why, in words). Unknown id → Kind.NOT_FOUND.
    return this.provider.status(providerId);
  }

  /**
   * @param {string} providerId
   */
  async cancel(providerId) {
    // Real provider: ask it to stop the fax. The final state still comes from status(). Drop `cancel` from
    // the capabilities if the provider cannot cancel.
    return this.provider.cancel(providerId);
  }

  /**
   * @param {import('faxbot-plugin-kit').WebhookRequest} req
   */
  async webhook(req) {
    // Real provider: verify the signature over req.body (the raw bytes) with its scheme before reading any
    // field, comparing in constant time (crypto.timingSafeEqual); a callback that does not verify is
    // refused with Kind.UNAUTHENTICATED. Then answer { events: [{ providerId, status, error? }] }.
    return this.provider.webhook(req);
  }
}

module.exports = { FaxPlugin };
