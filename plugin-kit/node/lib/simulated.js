'use strict';
// An in-memory fax provider whose every branch is chosen by the destination number, as the conformance
// numbers say (docs/plugin-protocol.yaml, `scenario` in contract/src/sidecar.rs): the last four digits
// `0100` deliver, `0101` fail in transmission, `0102` are refused at send, `0103` find the provider busy;
// any other number delivers. A plugin delegates to it until it talks to its real provider, and keeps
// passing the conformance suite's scenarios while it does.
//
// Transmission is instantaneous and deterministic: a fax is `in_progress` when sent, and the first `status`
// call finds it finished, so tests need no clocks.

const crypto = require('node:crypto');
const { Kind, PluginError } = require('./errors');

const E164 = /^\+[1-9][0-9]{6,14}$/;

const SIGNATURE_HEADER = 'x-sim-signature';
const TRANSMISSION_FAILURE = 'no answer from the receiving fax machine';
const CALLBACK_FIELDS = ['providerId', 'status', 'error'];

/**
 * The signature the simulated provider puts on a callback: lower-case hex HMAC-SHA256 of the raw body,
 * keyed with the webhook secret.
 * @param {string | Buffer} secret
 * @param {string | Buffer | Uint8Array} body the exact bytes sent
 * @returns {string}
 */
function signSimWebhook(secret, body) {
  if (typeof body !== 'string' && !(body instanceof Uint8Array)) {
    throw new TypeError('signSimWebhook signs the exact body: pass a string or bytes');
  }
  return crypto.createHmac('sha256', secret).update(body).digest('hex');
}

/** The branch a destination takes (`scenario::outcome`). */
function outcomeOf(to) {
  if (to.endsWith('0101')) return 'fails';
  if (to.endsWith('0102')) return 'rejected';
  if (to.endsWith('0103')) return 'busy';
  return 'delivered';
}

function unauthenticated() {
  // One message for every way a callback can fail to be authentic, so a forger learns nothing from it.
  return new PluginError(Kind.UNAUTHENTICATED, 'the callback is not signed by the simulated provider');
}

class SimulatedProvider {
  /** @type {Map<string, {status: string, error: string | null, key: string, outcome: string}>} */
  #faxes = new Map();
  /** @type {Map<string, string>} idempotency key → provider id */
  #byKey = new Map();
  #next = 1;
  /** @type {Buffer | null} */
  #secret;
  #maxFaxes;

  /**
   * @param {{webhookSecret?: string | Buffer | null, maxFaxes?: number}} [options] without a webhook secret
   *   no callback is authentic; `maxFaxes` bounds the memory a long-running simulation holds (the oldest
   *   faxes are forgotten first).
   */
  constructor({ webhookSecret = null, maxFaxes = 10_000 } = {}) {
    if (webhookSecret !== null && webhookSecret !== undefined && typeof webhookSecret !== 'string'
      && !Buffer.isBuffer(webhookSecret)) {
      throw new TypeError('webhookSecret must be a string or a Buffer');
    }
    if (!Number.isSafeInteger(maxFaxes) || maxFaxes < 1) throw new TypeError('maxFaxes must be a positive integer');
    // An empty secret would make every signature computable by anyone: it counts as none.
    this.#secret = webhookSecret && webhookSecret.length > 0 ? Buffer.from(webhookSecret) : null;
    this.#maxFaxes = maxFaxes;
  }

  /**
   * @param {import('../index').SendRequest} req
   * @returns {Promise<import('../index').FaxAnswer>}
   */
  async send(req) {
    if (typeof req.to !== 'string' || !E164.test(req.to)) {
      throw new PluginError(Kind.REJECTED, 'invalid destination');
    }
    const known = this.#byKey.get(req.idempotencyKey);
    if (known !== undefined && this.#faxes.has(known)) return this.#answer(known, true);
    const outcome = outcomeOf(req.to);
    if (outcome === 'rejected') throw new PluginError(Kind.REJECTED, 'the provider refused the destination');
    // Busy creates nothing, so the server's retry after the hint is a fresh attempt.
    if (outcome === 'busy') throw new PluginError(Kind.UNAVAILABLE, 'the provider is busy', 1000);
    const providerId = `sim-${this.#next}`;
    this.#next += 1;
    this.#faxes.set(providerId, { status: 'in_progress', error: null, key: req.idempotencyKey, outcome });
    this.#byKey.set(req.idempotencyKey, providerId);
    this.#forgetOldest();
    return { providerId, status: 'in_progress', checkAfterMs: 0 };
  }

  /**
   * @param {string} providerId
   * @returns {Promise<import('../index').FaxAnswer>}
   */
  async status(providerId) {
    const fax = this.#fax(providerId);
    if (fax.status === 'in_progress') {
      if (fax.outcome === 'fails') {
        fax.status = 'failed';
        fax.error = TRANSMISSION_FAILURE;
      } else {
        fax.status = 'delivered';
      }
    }
    return this.#answer(providerId, false);
  }

  /**
   * Stops an unfinished fax (it ends `failed`, "cancelled"); a finished one stays as it is.
   * @param {string} providerId
   * @returns {Promise<void>}
   */
  async cancel(providerId) {
    const fax = this.#fax(providerId);
    if (fax.status === 'in_progress' || fax.status === 'queued') {
      fax.status = 'failed';
      fax.error = 'cancelled';
    }
  }

  /**
   * A callback `{"providerId", "status": "delivered" | "failed", "error"?}` signed in `x-sim-signature`.
   * It finishes a fax still in progress; a finished fax keeps its state (a fax ends once) and the event
   * reports that state, so callbacks and `status` never disagree. A callback about an unknown fax is reported
   * as it came: the server ignores ids it does not know.
   * @param {import('../index').WebhookRequest} req
   * @returns {Promise<import('../index').WebhookAnswer>}
   */
  async webhook(req) {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.from(String(req.bodyBase64), 'base64');
    this.#authenticate(req.headers, body);
    let event;
    try {
      event = JSON.parse(body.toString('utf8'));
    } catch {
      throw new PluginError(Kind.BAD_REQUEST, 'the callback body is not JSON');
    }
    const shapeOk = event !== null && typeof event === 'object' && !Array.isArray(event)
      && Object.keys(event).every((k) => CALLBACK_FIELDS.includes(k))
      && typeof event.providerId === 'string' && event.providerId !== ''
      && (event.status === 'delivered' || event.status === 'failed')
      && (event.error === undefined || event.error === null || typeof event.error === 'string');
    if (!shapeOk) {
      throw new PluginError(Kind.BAD_REQUEST, 'the callback body is not a simulated provider status');
    }
    const fax = this.#faxes.get(event.providerId);
    if (fax === undefined) {
      const reported = { providerId: event.providerId, status: event.status };
      if (event.status === 'failed') reported.error = event.error || 'transmission failed';
      return { events: [reported] };
    }
    if (fax.status === 'in_progress' || fax.status === 'queued') {
      fax.status = event.status;
      fax.error = event.status === 'failed' ? event.error || 'transmission failed' : null;
    }
    return { events: [this.#answer(event.providerId, false)] };
  }

  #authenticate(headers, body) {
    if (this.#secret === null) throw unauthenticated();
    const signatures = (Array.isArray(headers) ? headers : [])
      .filter((pair) => Array.isArray(pair) && String(pair[0]).toLowerCase() === SIGNATURE_HEADER);
    // Two signatures are refused rather than either being picked: which one a proxy or a parser keeps is
    // exactly the ambiguity a forger would use.
    if (signatures.length !== 1) throw unauthenticated();
    const given = String(signatures[0][1]);
    if (!/^[0-9a-f]{64}$/.test(given)) throw unauthenticated();
    const expected = crypto.createHmac('sha256', this.#secret).update(body).digest();
    if (!crypto.timingSafeEqual(Buffer.from(given, 'hex'), expected)) throw unauthenticated();
  }

  #fax(providerId) {
    const fax = this.#faxes.get(providerId);
    if (fax === undefined) throw new PluginError(Kind.NOT_FOUND, 'no such fax');
    return fax;
  }

  #answer(providerId, forSend) {
    const fax = this.#faxes.get(providerId);
    const answer = { providerId, status: fax.status };
    if (fax.error !== null) answer.error = fax.error;
    // An unfinished fax is worth asking about again at once: the next status call finishes it.
    if (forSend && (fax.status === 'in_progress' || fax.status === 'queued')) answer.checkAfterMs = 0;
    return answer;
  }

  #forgetOldest() {
    while (this.#faxes.size > this.#maxFaxes) {
      const [oldestId, oldest] = this.#faxes.entries().next().value;
      this.#faxes.delete(oldestId);
      if (this.#byKey.get(oldest.key) === oldestId) this.#byKey.delete(oldest.key);
    }
  }
}

module.exports = { SimulatedProvider, signSimWebhook, SIGNATURE_HEADER, TRANSMISSION_FAILURE };
