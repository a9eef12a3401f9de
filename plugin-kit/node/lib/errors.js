'use strict';
// The protocol's error kinds and the one error a plugin throws to choose the answer the server gets.
//
// The kind decides what the Faxbot server does next (contract/src/sidecar.rs, `ErrorKind`): `rate_limited`
// and `unavailable` are retried, everything else fails the job or refuses the callback. The HTTP status is
// a function of the kind, so a plugin never picks a status itself.

/** HTTP status per kind, as `ErrorKind::status` in contract/src/sidecar.rs. */
const STATUS_OF_KIND = Object.freeze({
  bad_request: 400,
  unauthenticated: 401,
  credentials: 502,
  rejected: 422,
  not_found: 404,
  rate_limited: 429,
  unavailable: 503,
  unsupported: 501,
});

/** The kinds by name: a misspelt constant (`Kind.REJECT`) is `undefined`, which the constructor refuses. */
const Kind = Object.freeze({
  BAD_REQUEST: 'bad_request',
  UNAUTHENTICATED: 'unauthenticated',
  CREDENTIALS: 'credentials',
  REJECTED: 'rejected',
  NOT_FOUND: 'not_found',
  RATE_LIMITED: 'rate_limited',
  UNAVAILABLE: 'unavailable',
  UNSUPPORTED: 'unsupported',
});

// A registered symbol rather than `instanceof`: a plugin may end up with two copies of the kit (one linked
// for development, one installed by a dependency), and an error thrown with one copy's class must still be
// recognised by the other's server instead of turning into "internal plugin error".
const BRAND = Symbol.for('faxbot-plugin-kit.PluginError');

/**
 * The error a plugin throws to answer with a protocol error. Its message goes to the Faxbot server (after the
 * kit masks digit runs), so it must say what went wrong in words: no number, no document content.
 */
class PluginError extends Error {
  /**
   * @param {string} kind one of {@link Kind}
   * @param {string} message for people; no PHI
   * @param {number | null} [retryAfterMs] when to try again (`rate_limited`, `unavailable`)
   */
  constructor(kind, message, retryAfterMs = null) {
    if (!Object.prototype.hasOwnProperty.call(STATUS_OF_KIND, kind)) {
      throw new TypeError(`PluginError: unknown kind (expected one of ${Object.keys(STATUS_OF_KIND).join(', ')})`);
    }
    if (typeof message !== 'string') {
      throw new TypeError('PluginError: the message must be a string');
    }
    if (retryAfterMs !== null && retryAfterMs !== undefined) {
      if (typeof retryAfterMs !== 'number' || !Number.isFinite(retryAfterMs) || retryAfterMs < 0) {
        throw new TypeError('PluginError: retryAfterMs must be a non-negative number of milliseconds');
      }
    }
    super(message);
    this.name = 'PluginError';
    this.kind = kind;
    // The protocol carries whole milliseconds; rounding up never asks for an earlier retry than meant.
    this.retryAfterMs = retryAfterMs === null || retryAfterMs === undefined ? null : Math.ceil(retryAfterMs);
  }

  /** The HTTP status of this error's kind. */
  get status() {
    return STATUS_OF_KIND[this.kind];
  }
}
Object.defineProperty(PluginError.prototype, BRAND, { value: true });

/** Whether `e` is a PluginError from this or any other copy of the kit. */
function isPluginError(e) {
  return e !== null && typeof e === 'object' && e[BRAND] === true && typeof e.kind === 'string'
    && Object.prototype.hasOwnProperty.call(STATUS_OF_KIND, e.kind);
}

/** The HTTP status of a kind. */
function statusOfKind(kind) {
  const status = STATUS_OF_KIND[kind];
  if (status === undefined) throw new TypeError('unknown error kind');
  return status;
}

module.exports = { Kind, PluginError, isPluginError, statusOfKind, STATUS_OF_KIND };
