'use strict';
// Shared pieces of the kit's tests (not itself a test file: `npm test` runs test/*.test.js).

const net = require('node:net');
const { Plugin } = require('..');

/** A manifest the server accepts; `overrides` replace fields (undefined deletes one). */
function goodManifest(overrides = {}) {
  const m = {
    protocol: 1,
    id: 'acme-fax',
    name: 'Acme Fax',
    version: '0.1.0',
    hipaaCompliant: true,
    capabilities: ['send', 'status', 'cancel', 'webhook'],
    idempotent: true,
    needsDocument: true,
    pollIntervalMs: 5000,
    webhook: { verification: 'HMAC-SHA256 in X-Acme-Signature', maxBytes: 1 << 20 },
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete m[k];
    else m[k] = v;
  }
  return m;
}

/**
 * A plugin whose methods are what a test says, recording every call: `calls` holds [method, argument].
 * Methods not given answer a fixed, valid state.
 */
class ScriptedPlugin extends Plugin {
  constructor({ manifest = goodManifest(), ...methods } = {}) {
    super();
    this.calls = [];
    this.manifestValue = manifest;
    this.methods = methods;
  }

  manifest() {
    return this.manifestValue;
  }

  #run(name, arg, fallback) {
    this.calls.push([name, arg]);
    return this.methods[name] ? this.methods[name](arg) : fallback();
  }

  health() {
    return this.#run('health', undefined, () => ({ status: 'ok' }));
  }

  async send(req) {
    return this.#run('send', req, () => ({ providerId: 'p-1', status: 'in_progress', checkAfterMs: 2000 }));
  }

  async status(id) {
    return this.#run('status', id, () => ({ providerId: id, status: 'delivered' }));
  }

  async cancel(id) {
    return this.#run('cancel', id, () => undefined);
  }

  async webhook(req) {
    return this.#run('webhook', req, () => ({ events: [] }));
  }
}

/**
 * Writes `text` on a fresh connection and collects what comes back until the server closes the connection
 * or `waitMs` pass. `keepOpen` leaves the client's side open (a client still "sending").
 * @returns {Promise<{raw: string, status: number | null, headers: Record<string, string>, body: any, closedByServer: boolean}>}
 */
function rawExchange(url, text, { waitMs = 2000 } = {}) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let raw = '';
    let closedByServer = false;
    const timer = setTimeout(() => socket.destroy(), waitMs);
    socket.on('connect', () => socket.write(text));
    socket.on('data', (d) => { raw += d.toString('latin1'); });
    socket.on('end', () => { closedByServer = true; });
    socket.on('error', (e) => { if (e.code !== 'ECONNRESET' && e.code !== 'EPIPE') reject(e); });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ ...parseResponse(raw), raw, closedByServer });
    });
  });
}

function parseResponse(raw) {
  const split = raw.indexOf('\r\n\r\n');
  if (split === -1) return { status: null, headers: {}, body: null };
  const [statusLine, ...lines] = raw.slice(0, split).split('\r\n');
  const headers = {};
  for (const line of lines) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  const text = raw.slice(split + 4);
  let body = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Left as text: the test says what it expects.
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

/** Collects log lines. */
function logCollector() {
  const lines = [];
  const log = (line) => lines.push(line);
  log.lines = lines;
  return log;
}

module.exports = { goodManifest, ScriptedPlugin, rawExchange, logCollector };
