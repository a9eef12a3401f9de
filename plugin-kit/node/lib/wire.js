'use strict';
// The protocol's bodies: requests from the server checked into what a plugin method receives, and a
// plugin's answers checked into what goes on the wire. Pure functions, no I/O.
//
// Requests are refused the way serde refuses them on the Rust side (`deny_unknown_fields`, required fields,
// types), but with messages that only name the field: the request holds a fax number and a document, and a
// message that quoted a value could carry either back into the server's logs.

const { Kind, PluginError } = require('./errors');
const { maskNumbers } = require('./phi');

const FAX_STATES = Object.freeze(['queued', 'in_progress', 'delivered', 'failed']);

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function badRequest(message) {
  return new PluginError(Kind.BAD_REQUEST, message);
}

function refuseUnknownFields(obj, allowed, what) {
  for (const key of Object.keys(obj)) {
    // The key itself is input (it could be anything, a number included), so it is not named.
    if (!allowed.includes(key)) throw badRequest(`${what} has a field the protocol does not define`);
  }
}

function requireString(obj, field, what) {
  if (typeof obj[field] !== 'string') throw badRequest(`${what}: \`${field}\` must be a string`);
  return obj[field];
}

/**
 * The bytes of standard, padded base64 (the protocol's encoding), or `null` when `text` is anything else.
 * Node's decoder skips what it does not understand, so the check is that decoding and encoding again gives
 * back exactly `text`: that refuses foreign characters, whitespace, missing padding and non-zero trailing
 * bits in one native pass, whatever the size.
 * @param {string} text
 * @returns {Buffer | null}
 */
function decodeBase64(text) {
  if (typeof text !== 'string' || text.length % 4 !== 0) return null;
  const bytes = Buffer.from(text, 'base64');
  return bytes.toString('base64') === text ? bytes : null;
}

const SEND_FIELDS = ['jobId', 'to', 'idempotencyKey', 'pages', 'document'];
const DOCUMENT_FIELDS = ['contentType', 'base64'];

/**
 * A `POST /v1/send` body as the plugin receives it; throws a `bad_request` PluginError.
 * @param {unknown} body parsed JSON
 * @returns {import('../index').SendRequest}
 */
function parseSendRequest(body) {
  const what = 'the send request';
  if (!isPlainObject(body)) throw badRequest(`${what} must be a JSON object`);
  refuseUnknownFields(body, SEND_FIELDS, what);
  const jobId = requireString(body, 'jobId', what);
  const to = requireString(body, 'to', what);
  const idempotencyKey = requireString(body, 'idempotencyKey', what);
  const pages = body.pages === undefined ? null : body.pages;
  if (pages !== null && !Number.isSafeInteger(pages)) throw badRequest(`${what}: \`pages\` must be an integer or null`);
  let document = null;
  if (body.document !== undefined && body.document !== null) {
    const d = body.document;
    if (!isPlainObject(d)) throw badRequest(`${what}: \`document\` must be an object or null`);
    refuseUnknownFields(d, DOCUMENT_FIELDS, `${what}'s document`);
    if (d.contentType !== 'application/pdf') throw badRequest(`${what}: \`document.contentType\` must be application/pdf`);
    const bytes = decodeBase64(d.base64);
    if (bytes === null) throw badRequest(`${what}: \`document.base64\` must be standard padded base64`);
    document = { contentType: d.contentType, base64: d.base64, bytes };
  }
  return { jobId, to, idempotencyKey, pages, document };
}

const WEBHOOK_FIELDS = ['url', 'headers', 'bodyBase64'];

/**
 * A `POST /v1/webhook` body as the plugin receives it; throws a `bad_request` PluginError.
 * @param {unknown} body parsed JSON
 * @returns {import('../index').WebhookRequest}
 */
function parseWebhookRequest(body) {
  const what = 'the webhook request';
  if (!isPlainObject(body)) throw badRequest(`${what} must be a JSON object`);
  refuseUnknownFields(body, WEBHOOK_FIELDS, what);
  const url = requireString(body, 'url', what);
  if (!Array.isArray(body.headers)) throw badRequest(`${what}: \`headers\` must be a list of [name, value] pairs`);
  const headers = body.headers.map((pair) => {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') {
      throw badRequest(`${what}: \`headers\` must be a list of [name, value] pairs`);
    }
    // The server sends lower-case names; folding here means a plugin can look a header up by one spelling.
    return [pair[0].toLowerCase(), pair[1]];
  });
  const bodyBase64 = requireString(body, 'bodyBase64', what);
  const raw = decodeBase64(bodyBase64);
  if (raw === null) throw badRequest(`${what}: \`bodyBase64\` must be standard padded base64`);
  return { url, headers, bodyBase64, body: raw };
}

/** Thrown when a plugin's own answer breaks the protocol: a bug in the plugin, answered as an internal error. */
class AnswerError extends Error {
  constructor(message) {
    super(message);
    this.name = 'AnswerError';
  }
}

const ANSWER_FIELDS = ['providerId', 'status', 'error', 'checkAfterMs'];

/**
 * A plugin's fax state as it goes on the wire: checked (so the server never reads a malformed answer, which
 * it could only treat as "unavailable") and with `error` masked.
 * @param {unknown} answer what `send`, `status` or `webhook` returned
 * @param {string} method for the log line when the answer is malformed
 * @returns {import('../index').FaxAnswer}
 */
function checkFaxAnswer(answer, method) {
  const wrong = (problem) => new AnswerError(`${method}() answered a fax state that ${problem}`);
  if (!isPlainObject(answer)) throw wrong('is not an object');
  for (const key of Object.keys(answer)) {
    if (!ANSWER_FIELDS.includes(key)) throw wrong(`has the unknown field \`${maskNumbers(key)}\``);
  }
  const { providerId, status } = answer;
  // The server's own check on a provider id (`wire::submission`): it goes into URLs and the job record.
  if (typeof providerId !== 'string' || providerId.trim() === '' || Buffer.byteLength(providerId, 'utf8') > 200
    || /\p{Cc}/u.test(providerId)) {
    throw wrong('has no usable providerId (1–200 characters, no control characters)');
  }
  if (!FAX_STATES.includes(status)) throw wrong(`has a status other than ${FAX_STATES.join(', ')}`);
  const out = { providerId, status };
  if (answer.error !== undefined && answer.error !== null) {
    if (typeof answer.error !== 'string') throw wrong('has an error that is not a string');
    out.error = maskNumbers(answer.error);
  }
  if (answer.checkAfterMs !== undefined && answer.checkAfterMs !== null) {
    if (!Number.isSafeInteger(answer.checkAfterMs) || answer.checkAfterMs < 0) {
      throw wrong('has a checkAfterMs that is not a non-negative integer');
    }
    out.checkAfterMs = answer.checkAfterMs;
  }
  return out;
}

/**
 * A webhook answer as it goes on the wire.
 * @param {unknown} answer what `webhook` returned
 * @returns {{events: import('../index').FaxAnswer[]}}
 */
function checkWebhookAnswer(answer) {
  if (!isPlainObject(answer) || !Array.isArray(answer.events) || Object.keys(answer).some((k) => k !== 'events')) {
    throw new AnswerError('webhook() must answer { events: [...] }');
  }
  return { events: answer.events.map((e) => checkFaxAnswer(e, 'webhook')) };
}

/**
 * A health answer as status code and body. Anything but a clear `ok` is failing: a probe that cannot tell
 * must not keep a broken plugin in service.
 * @param {unknown} answer what `health` returned
 * @returns {{code: number, body: {status: string, message?: string}}}
 */
function healthBody(answer) {
  if (isPlainObject(answer) && answer.status === 'ok') return { code: 200, body: { status: 'ok' } };
  if (isPlainObject(answer) && answer.status === 'failing') {
    const message = typeof answer.message === 'string' && answer.message.trim() !== ''
      ? maskNumbers(answer.message)
      : 'the plugin reports it is failing';
    return { code: 503, body: { status: 'failing', message } };
  }
  return { code: 503, body: { status: 'failing', message: "the plugin's health check answered something other than ok or failing" } };
}

module.exports = {
  FAX_STATES,
  AnswerError,
  decodeBase64,
  parseSendRequest,
  parseWebhookRequest,
  checkFaxAnswer,
  checkWebhookAnswer,
  healthBody,
};
