'use strict';
// The manifest check: `check_manifest` in contract/src/sidecar.rs, plus the shape checks that the Rust side
// gets from deserialising into `SidecarManifest` (required fields, types, unknown fields refused). The
// server runs the same check when it reads `GET /v1/manifest`, so a manifest the kit accepts is one the
// server accepts, and a plugin that would be refused fails at start-up instead of in production.

const { mayHoldNumber, LOG_MIN_DIGITS } = require('./phi');

/** The protocol this kit speaks (`PROTOCOL_VERSION`). */
const PROTOCOL_VERSION = 1;

/** Ids of the server's built-in plugins, which a sidecar may not take (`plugins::builtin_manifests`). */
const BUILTIN_IDS = Object.freeze(['test', 'phaxio', 'sinch', 'sip', 'external', 'local', 's3', 'api_keys']);

/** Largest callback body a plugin may ask for (`WEBHOOK_MAX_BYTES`). */
const WEBHOOK_MAX_BYTES = 32 * 1024 * 1024;

/** Callback body limit when the manifest names none (`default_webhook_bytes`). */
const DEFAULT_WEBHOOK_BYTES = 1024 * 1024;

const CAPABILITIES = Object.freeze(['send', 'status', 'cancel', 'webhook']);

const MANIFEST_FIELDS = Object.freeze([
  'protocol', 'id', 'name', 'version', 'hipaaCompliant', 'capabilities', 'idempotent', 'needsDocument',
  'pollIntervalMs', 'webhook',
]);
const REQUIRED_FIELDS = MANIFEST_FIELDS.filter((f) => f !== 'webhook');
const WEBHOOK_FIELDS = Object.freeze(['verification', 'maxBytes']);

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function has(obj, key) {
  return Object.prototype.hasOwnProperty.call(obj, key);
}

// Rust's `to_ascii_lowercase`: only A–Z change, so `NONE` is refused and nothing else is folded into it.
function asciiLower(s) {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/**
 * Everything wrong with a manifest, as `[field, problem]` pairs; empty when the server would use it.
 * @param {unknown} m
 * @returns {Array<[string, string]>}
 */
function validateManifest(m) {
  const problems = [];
  const bad = (field, problem) => problems.push([field, problem]);
  if (!isPlainObject(m)) {
    bad('', 'the manifest must be an object');
    return problems;
  }
  for (const key of Object.keys(m)) {
    if (!MANIFEST_FIELDS.includes(key)) bad(key, 'unknown field');
  }
  for (const key of REQUIRED_FIELDS) {
    if (!has(m, key) || m[key] === undefined) bad(key, 'required');
  }

  if (has(m, 'protocol') && m.protocol !== PROTOCOL_VERSION) {
    bad('protocol', Number.isSafeInteger(m.protocol) && m.protocol >= 0
      ? `this server speaks protocol ${PROTOCOL_VERSION}, the plugin ${m.protocol}`
      : `must be ${PROTOCOL_VERSION}`);
  }

  if (has(m, 'id')) {
    // Length in bytes as Rust's `len()`; the character rule makes bytes and characters the same here.
    const idOk = typeof m.id === 'string' && /^[a-z][a-z0-9-]{1,62}$/.test(m.id);
    if (!idOk) bad('id', "must be 2–63 lower-case letters, digits or '-', starting with a letter");
    // The built-in ids are the only ones echoed: they are known words, never input worth hiding.
    if (typeof m.id === 'string' && BUILTIN_IDS.includes(m.id)) bad('id', `\`${m.id}\` is a built-in plugin's id`);
  }

  if (has(m, 'name')) {
    const text = m.name;
    // The server counts UTF-8 bytes (`str::len`), so a name of 200 accented letters is too long there too.
    if (typeof text !== 'string' || text.trim() === '' || Buffer.byteLength(text, 'utf8') > 200) {
      bad('name', 'must be 1–200 characters');
    } else if (mayHoldNumber(text, LOG_MIN_DIGITS)) {
      bad('name', 'must not contain numbers that could be phone numbers');
    }
  }
  // A version is digits by nature (2024.01.15), so it is held to a version's characters instead.
  if (has(m, 'version') && (typeof m.version !== 'string' || !/^[0-9A-Za-z.+_-]{1,64}$/.test(m.version))) {
    bad('version', "must be 1–64 letters, digits, '.', '+', '-' or '_'");
  }

  for (const field of ['hipaaCompliant', 'idempotent', 'needsDocument']) {
    if (has(m, field) && m[field] !== undefined && typeof m[field] !== 'boolean') bad(field, 'must be true or false');
  }

  let capabilities = [];
  if (has(m, 'capabilities')) {
    if (!Array.isArray(m.capabilities) || !m.capabilities.every((c) => typeof c === 'string')) {
      bad('capabilities', `must be a list of ${CAPABILITIES.join(', ')}`);
    } else {
      capabilities = m.capabilities;
      if (capabilities.some((c) => !CAPABILITIES.includes(c))) {
        bad('capabilities', `may hold only ${CAPABILITIES.join(', ')}`);
      }
      for (const needed of ['send', 'status']) {
        if (!capabilities.includes(needed)) bad('capabilities', `must include \`${needed}\``);
      }
    }
  }

  if (has(m, 'pollIntervalMs')) {
    const p = m.pollIntervalMs;
    if (!Number.isSafeInteger(p) || p < 1000 || p > 3_600_000) bad('pollIntervalMs', 'must be between 1000 and 3600000');
  }

  const section = has(m, 'webhook') && m.webhook !== null && m.webhook !== undefined ? m.webhook : null;
  const takesWebhooks = capabilities.includes('webhook');
  if (section === null && takesWebhooks) {
    bad('webhook', 'the `webhook` capability needs a webhook section');
  } else if (section !== null && !isPlainObject(section)) {
    bad('webhook', 'must be an object with `verification` (and optionally `maxBytes`), or null');
  } else if (section !== null && !takesWebhooks) {
    bad('webhook', 'a webhook section needs the `webhook` capability');
  } else if (section !== null) {
    for (const key of Object.keys(section)) {
      if (!WEBHOOK_FIELDS.includes(key)) bad(`webhook.${key}`, 'unknown field');
    }
    const scheme = typeof section.verification === 'string' ? asciiLower(section.verification.trim()) : '';
    if (scheme === '' || scheme === 'none') {
      bad('webhook.verification', 'callbacks must be authenticated; `none` is refused');
    }
    if (has(section, 'maxBytes') && section.maxBytes !== undefined) {
      const b = section.maxBytes;
      if (!Number.isSafeInteger(b) || b < 1 || b > WEBHOOK_MAX_BYTES) {
        bad('webhook.maxBytes', `must be between 1 and ${WEBHOOK_MAX_BYTES}`);
      }
    }
  }
  return problems;
}

/** Thrown by `createServer` for a manifest the server would refuse; `problems` lists every one. */
class ManifestError extends Error {
  /** @param {Array<[string, string]>} problems */
  constructor(problems) {
    super(`invalid plugin manifest: ${problems.map(([f, p]) => (f ? `${f}: ${p}` : p)).join('; ')}`);
    this.name = 'ManifestError';
    this.problems = problems;
  }
}

/** The callback body limit a valid manifest sets. */
function webhookMaxBytes(manifest) {
  const w = manifest.webhook;
  return w && w.maxBytes !== undefined ? w.maxBytes : DEFAULT_WEBHOOK_BYTES;
}

module.exports = {
  PROTOCOL_VERSION,
  BUILTIN_IDS,
  CAPABILITIES,
  WEBHOOK_MAX_BYTES,
  DEFAULT_WEBHOOK_BYTES,
  ManifestError,
  validateManifest,
  webhookMaxBytes,
};
