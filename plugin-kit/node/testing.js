'use strict';
// faxbot-plugin-kit/testing: a mock of the Faxbot server for a plugin's own unit tests. It serves the plugin
// with the kit on 127.0.0.1 (a free port) and calls it the way the server does — Bearer token,
// `Faxbot-Plugin-Protocol: 1`, the protocol's JSON bodies — so a test exercises the plugin through exactly
// the HTTP the server will use, and sees exactly the answers the server will see.

const http = require('node:http');
const crypto = require('node:crypto');
const { createServer, serverUrl, PROTOCOL_HEADER } = require('./lib/server');
const { signSimWebhook } = require('./lib/simulated');

/**
 * A one-page PDF, the document `send` carries when a test gives none and the manifest asks for one.
 * Built with a correct cross-reference table so that a plugin which inspects PDFs accepts it.
 */
const SAMPLE_PDF = (() => {
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>',
  ];
  let pdf = '%PDF-1.4\n';
  const offsets = objects.map((body, i) => {
    const offset = pdf.length;
    pdf += `${i + 1} 0 obj\n${body}\nendobj\n`;
    return offset;
  });
  const xref = pdf.length;
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  pdf += offsets.map((o) => `${String(o).padStart(10, '0')} 00000 n \n`).join('');
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return Buffer.from(pdf, 'latin1');
})();

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function headerPairs(headers) {
  if (headers === undefined || headers === null) return [];
  const pairs = Array.isArray(headers) ? headers : Object.entries(headers);
  return pairs.map(([name, value]) => [String(name).toLowerCase(), String(value)]);
}

class MockFaxbot {
  #server;
  #url;
  #token;
  #manifest;

  /** Use {@link MockFaxbot.start}. */
  constructor(server, url, token, manifest) {
    this.#server = server;
    this.#url = url;
    this.#token = token;
    this.#manifest = manifest;
  }

  /**
   * Serves `plugin` on 127.0.0.1 (a free port) and reads its manifest as the server does first.
   * @param {import('./index').Plugin} plugin
   * @param {import('./testing').MockOptions} [options] `token` defaults to a random one (pass `null` for a
   *   plugin without a token); the rest are `createServer` options.
   * @returns {Promise<MockFaxbot>}
   */
  static async start(plugin, options = {}) {
    const token = options.token === undefined ? crypto.randomBytes(24).toString('base64url') : options.token;
    const server = createServer(plugin, { ...options, token });
    await listen(server);
    const mock = new MockFaxbot(server, serverUrl(server), token, null);
    const answer = await mock.manifest();
    if (answer.status !== 200) {
      await mock.close();
      throw new Error(`the plugin answered GET /v1/manifest with ${answer.status}`);
    }
    mock.#manifest = answer.body;
    return mock;
  }

  /** The plugin's base URL, e.g. `http://127.0.0.1:40123`. */
  get url() {
    return this.#url;
  }

  /** The token the mock presents (`null` when the plugin runs without one). */
  get token() {
    return this.#token;
  }

  /** The manifest read at start. */
  get pluginManifest() {
    return this.#manifest;
  }

  /**
   * Any request, as the server would send it (token and protocol header added unless overridden).
   * @param {string} method
   * @param {string} path
   * @param {{body?: Buffer | string | object, headers?: Record<string, string>, token?: string | null}} [options]
   *   an object body is sent as JSON; `token: null` sends none
   * @returns {Promise<import('./testing').Answer>}
   */
  request(method, path, options = {}) {
    const token = options.token === undefined ? this.#token : options.token;
    const headers = { [PROTOCOL_HEADER]: '1' };
    if (token) headers.authorization = `Bearer ${token}`;
    let body;
    if (options.body !== undefined) {
      body = Buffer.isBuffer(options.body) || typeof options.body === 'string'
        ? Buffer.from(options.body)
        : Buffer.from(JSON.stringify(options.body));
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(body.length);
    } else if (method === 'POST') {
      headers['content-length'] = '0';
    }
    Object.assign(headers, options.headers || {});
    const target = new URL(path, this.#url);
    return new Promise((resolve, reject) => {
      // A fresh connection per call (no agent): a test must not depend on a connection kept from the last.
      const req = http.request(target, { method, headers, agent: false }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          let parsed = raw === '' ? null : raw;
          if (raw !== '' && String(res.headers['content-type']).startsWith('application/json')) {
            try {
              parsed = JSON.parse(raw);
            } catch {
              parsed = raw;
            }
          }
          resolve({ status: res.statusCode, body: parsed, headers: res.headers });
        });
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** `GET /v1/manifest`. */
  manifest() {
    return this.request('GET', '/v1/manifest');
  }

  /** `GET /v1/health`. */
  health() {
    return this.request('GET', '/v1/health');
  }

  /**
   * `POST /v1/send`. The document defaults to a one-page PDF when the manifest says `needsDocument` (and to
   * none otherwise, as the server sends none); pass `null` for none, bytes for a PDF, or an object to send
   * as the `document` field verbatim. `jobId` defaults to a random id and `idempotencyKey` to the job id.
   * @param {string} to
   * @param {import('./testing').SendOptions} [options]
   */
  send(to, options = {}) {
    const jobId = options.jobId === undefined ? crypto.randomBytes(8).toString('hex') : options.jobId;
    let document = options.document;
    if (document === undefined) document = this.#manifest && this.#manifest.needsDocument ? SAMPLE_PDF : null;
    if (document instanceof Uint8Array) {
      document = { contentType: 'application/pdf', base64: Buffer.from(document).toString('base64') };
    }
    // Absent values go as null, as the server's serialiser writes them.
    return this.request('POST', '/v1/send', {
      body: {
        jobId,
        to,
        idempotencyKey: options.idempotencyKey === undefined ? jobId : options.idempotencyKey,
        pages: options.pages === undefined ? null : options.pages,
        document,
      },
    });
  }

  /** `GET /v1/faxes/{providerId}`. */
  status(providerId) {
    return this.request('GET', `/v1/faxes/${encodeURIComponent(providerId)}`);
  }

  /** `POST /v1/faxes/{providerId}/cancel`. */
  cancel(providerId) {
    return this.request('POST', `/v1/faxes/${encodeURIComponent(providerId)}/cancel`);
  }

  /**
   * `POST /v1/webhook`: a provider callback as the server forwards it.
   * @param {Buffer | string | object} body the raw callback body (an object is sent as its JSON)
   * @param {Record<string, string> | Array<[string, string]>} [headers] the callback's headers
   * @param {string} [url] the URL the provider called
   */
  webhook(body, headers = {}, url = undefined) {
    const raw = Buffer.isBuffer(body) || typeof body === 'string' ? Buffer.from(body) : Buffer.from(JSON.stringify(body));
    const id = this.#manifest && this.#manifest.id ? this.#manifest.id : 'external';
    return this.request('POST', '/v1/webhook', {
      body: {
        url: url === undefined ? `https://faxbot.example/webhooks/${id}` : url,
        headers: headerPairs(headers),
        bodyBase64: raw.toString('base64'),
      },
    });
  }

  /** Stops the server and drops its connections. */
  close() {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      if (typeof this.#server.closeAllConnections === 'function') this.#server.closeAllConnections();
    });
  }
}

module.exports = { MockFaxbot, signSimWebhook, SAMPLE_PDF };
