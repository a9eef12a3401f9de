'use strict';
// The base class a plugin extends. Only `manifest`, `send` and `status` need writing; the rest answer what
// a plugin that does not support them must answer.

const { Kind, PluginError } = require('./errors');

class Plugin {
  /**
   * Who the plugin is and what it can do (see `Manifest` in index.d.ts). Synchronous: the server checks it
   * before it serves anything, and it must not change while the plugin runs.
   * @returns {import('../index').Manifest}
   */
  manifest() {
    throw new Error(`${this.constructor.name} must implement manifest()`);
  }

  /**
   * Whether the plugin can work: its credentials present, its provider reachable. Answer
   * `{ status: 'failing', message }` (no PHI in the message) to be taken out of service.
   * @returns {import('../index').Health | Promise<import('../index').Health>}
   */
  health() {
    return { status: 'ok' };
  }

  /**
   * Submits a fax. Use `req.idempotencyKey` as the provider's idempotency key when the manifest says
   * `idempotent: true`. Throw a PluginError to refuse.
   * @param {import('../index').SendRequest} _req
   * @returns {Promise<import('../index').FaxAnswer>}
   */
  async send(_req) {
    throw new PluginError(Kind.UNSUPPORTED, `${this.constructor.name} does not implement send`);
  }

  /**
   * The provider's current view of a fax; throw `not_found` for an id it does not know.
   * @param {string} _providerId
   * @returns {Promise<import('../index').FaxAnswer>}
   */
  async status(_providerId) {
    throw new PluginError(Kind.UNSUPPORTED, `${this.constructor.name} does not implement status`);
  }

  /**
   * Asks the provider to stop a fax (capability `cancel`); the final state still comes from `status`.
   * @param {string} _providerId
   * @returns {Promise<void>}
   */
  async cancel(_providerId) {
    throw new PluginError(Kind.UNSUPPORTED, 'cancelling is not supported by this plugin');
  }

  /**
   * A provider callback (capability `webhook`): authenticate it before trusting any field, and throw
   * `unauthenticated` when that fails.
   * @param {import('../index').WebhookRequest} _req
   * @returns {Promise<import('../index').WebhookAnswer>}
   */
  async webhook(_req) {
    throw new PluginError(Kind.UNSUPPORTED, 'callbacks are not supported by this plugin');
  }
}

module.exports = { Plugin };
