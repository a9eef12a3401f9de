'use strict';
// The HTTP side of the sidecar protocol (docs/plugin-protocol.yaml): six routes over node:http, so that a
// plugin author writes only the calls to the provider.
//
// What this file guarantees, whatever the plugin does:
// - every non-2xx answer has the protocol's error body, with the status its kind stands for, and every
//   message passes the number mask before it leaves;
// - a body is read only on the routes that take one, only with a Content-Length, only up to the limit, and
//   a body that is refused is not read at all (the connection is closed instead);
// - nothing about a request (body, number, document) is logged; the only log line is for an exception the
//   plugin did not mean to throw, and it is masked too.

const http = require('node:http');
const crypto = require('node:crypto');
const { Kind, PluginError, isPluginError, statusOfKind } = require('./errors');
const { maskNumbers } = require('./phi');
const { validateManifest, ManifestError, webhookMaxBytes } = require('./manifest');
const wire = require('./wire');

const MIB = 1024 * 1024;

/** Largest request body by default: a 48 MiB message holds a 36 MiB document in base64 (as the Rust host). */
const DEFAULT_MAX_BODY_BYTES = 48 * MIB;

/** Time allowed for a request's headers: they are small and come over loopback. */
const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;

/** Time allowed for a whole request, body included: 48 MiB over loopback takes well under a second. */
const DEFAULT_REQUEST_TIMEOUT_MS = 60_000;

/** Header that carries the protocol version on every call from the server (`PROTOCOL_HEADER`). */
const PROTOCOL_HEADER = 'faxbot-plugin-protocol';

/** The routes and their methods. */
const METHOD_OF_ROUTE = Object.freeze({
  health: 'GET', manifest: 'GET', send: 'POST', status: 'GET', cancel: 'POST', webhook: 'POST',
});

/** A refusal whose status is not its kind's own (411, 413, 405, …): the kit's, never a plugin's. */
class Refusal extends Error {
  constructor(status, kind, message, headers = {}) {
    super(message);
    this.status = status;
    this.kind = kind;
    this.headers = headers;
  }
}

/** The connection went away while a body was read: there is nobody left to answer. */
class Aborted extends Error {}

/**
 * Which route a request target names; `null` for none. Query strings are ignored; the provider id is one
 * path segment, percent-encoded by the server.
 * @param {string} target
 * @returns {{name: string, rawId?: string} | null}
 */
function matchRoute(target) {
  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  switch (path) {
    case '/v1/health': return { name: 'health' };
    case '/v1/manifest': return { name: 'manifest' };
    case '/v1/send': return { name: 'send' };
    case '/v1/webhook': return { name: 'webhook' };
    default: {
      const m = /^\/v1\/faxes\/([^/]+)(\/cancel)?$/.exec(path);
      if (m === null) return null;
      return { name: m[2] === undefined ? 'status' : 'cancel', rawId: m[1] };
    }
  }
}

function sha256(text) {
  return crypto.createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Whether the request carries the plugin token. Both sides are hashed first: timingSafeEqual needs buffers
 * of one length, and comparing digests keeps the token's length out of the timing as well as its content.
 */
function presentsToken(req, tokenDigest) {
  const header = req.headers.authorization;
  if (typeof header !== 'string') return false;
  const m = /^bearer[ \t]+(\S+)$/i.exec(header);
  const presented = sha256(m === null ? '' : m[1]);
  // Computed even for a malformed header, so that a wrong scheme takes as long as a wrong token.
  return crypto.timingSafeEqual(presented, tokenDigest) && m !== null;
}

function describeBytes(n) {
  if (n % MIB === 0) return `${n / MIB} MiB`;
  if (n % 1024 === 0) return `${n / 1024} KiB`;
  return `${n} bytes`;
}

/** Whether the request says a body follows (which is then either read whole or not at all). */
function announcesBody(req) {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * The request body, bounded. Refuses before reading anything when the length is missing or too large; the
 * byte count while reading is a second bound that does not rest on Node's parser alone.
 * @returns {Promise<Buffer>}
 */
function readBody(req, limit) {
  const declaredText = req.headers['content-length'];
  if (declaredText === undefined) {
    // Chunked bodies have no length to refuse up front; the server always sends one.
    return Promise.reject(new Refusal(411, Kind.BAD_REQUEST, 'a request body needs a Content-Length header'));
  }
  const declared = Number(declaredText);
  if (!/^[0-9]+$/.test(declaredText) || !Number.isSafeInteger(declared)) {
    return Promise.reject(new Refusal(400, Kind.BAD_REQUEST, 'the Content-Length header is not a number'));
  }
  if (declared > limit) {
    return Promise.reject(new Refusal(413, Kind.REJECTED,
      `the request body is larger than this plugin accepts (${describeBytes(limit)})`));
  }
  return new Promise((resolve, reject) => {
    const chunks = [];
    let received = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
    };
    function onData(chunk) {
      received += chunk.length;
      if (received > declared || received > limit) {
        cleanup();
        req.socket.destroy();
        reject(new Aborted('the body ran past its length'));
        return;
      }
      chunks.push(chunk);
    }
    function onEnd() {
      cleanup();
      if (received !== declared) reject(new Refusal(400, Kind.BAD_REQUEST, 'the request body is shorter than its Content-Length'));
      else resolve(Buffer.concat(chunks, received));
    }
    function onGone() {
      cleanup();
      reject(new Aborted('the connection closed before the body arrived'));
    }
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
  });
}

function parseJson(buffer) {
  try {
    return JSON.parse(buffer.toString('utf8'));
  } catch {
    // JSON.parse's own message quotes the text around the error, which is the fax number or the document.
    throw new PluginError(Kind.BAD_REQUEST, 'the request body is not valid JSON');
  }
}

/** Writes a JSON answer, or nothing when the exchange is already over. */
function writeJson(req, res, status, value, headers = {}) {
  write(req, res, status, { 'content-type': 'application/json', ...headers }, JSON.stringify(value));
}

function write(req, res, status, headers, body) {
  if (res.headersSent || res.writableEnded || req.socket.destroyed) return;
  const all = { 'cache-control': 'no-store', ...headers };
  if (body !== undefined) all['content-length'] = Buffer.byteLength(body);
  // A body this answer did not read is not read afterwards either: without `close`, Node would drain it to
  // keep the connection alive, which is exactly the reading a refusal is meant to avoid.
  const unread = announcesBody(req) && !req.readableEnded;
  if (unread) all.connection = 'close';
  res.writeHead(status, all);
  res.end(body);
  if (unread) {
    res.once('finish', () => {
      // The answer is on its way; the connection ends once the peer has had a moment to read it (closing
      // at once with unread input can reset the connection and lose the answer in transit).
      setTimeout(() => req.socket.destroy(), 1000).unref();
    });
  }
}

function writeError(req, res, status, kind, message, retryAfterMs = null, headers = {}) {
  const error = { kind, message: maskNumbers(message) };
  const all = { ...headers };
  if (retryAfterMs !== null) {
    error.retryAfterMs = retryAfterMs;
    // Whole seconds, rounded up: a client that reads only the header must not come back early.
    all['retry-after'] = String(Math.ceil(retryAfterMs / 1000));
  }
  writeJson(req, res, status, { error }, all);
}

function describeForLog(err) {
  const text = err instanceof Error && typeof err.stack === 'string' ? err.stack : String(err);
  return maskNumbers(text);
}

function defaultLog(line) {
  process.stderr.write(`${line}\n`);
}

/** Calls a plugin method; a plugin object without it does not support the operation. */
async function call(plugin, method, arg) {
  if (typeof plugin[method] !== 'function') {
    throw new PluginError(Kind.UNSUPPORTED, `this plugin does not implement ${method}`);
  }
  return plugin[method](arg);
}

/**
 * The protocol's HTTP server for `plugin`. The caller listens (`server.listen(port, host)`; port 0 works).
 * Throws a {@link ManifestError} listing every problem when the plugin's manifest would be refused.
 * @param {import('../index').Plugin} plugin
 * @param {import('../index').ServerOptions} [options]
 * @returns {http.Server}
 */
function createServer(plugin, options = {}) {
  const {
    token,
    maxBodyBytes = DEFAULT_MAX_BODY_BYTES,
    headersTimeoutMs = DEFAULT_HEADERS_TIMEOUT_MS,
    requestTimeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
    log = defaultLog,
  } = options;
  if (plugin === null || typeof plugin !== 'object' || typeof plugin.manifest !== 'function') {
    throw new TypeError('createServer needs a plugin object with a manifest() method');
  }
  if (token !== undefined && token !== null && typeof token !== 'string') {
    throw new TypeError('the plugin token must be a string');
  }
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) {
    throw new TypeError('maxBodyBytes must be a positive integer');
  }
  for (const [name, value] of [['headersTimeoutMs', headersTimeoutMs], ['requestTimeoutMs', requestTimeoutMs]]) {
    if (!Number.isSafeInteger(value) || value < 1) throw new TypeError(`${name} must be a positive integer`);
  }
  if (log !== null && log !== false && typeof log !== 'function') {
    throw new TypeError('log must be a function, or null to log nothing');
  }

  const manifest = plugin.manifest();
  if (manifest !== null && typeof manifest === 'object' && typeof manifest.then === 'function') {
    throw new TypeError('manifest() must return the manifest itself, not a promise: it is checked before serving');
  }
  const problems = validateManifest(manifest);
  if (problems.length > 0) throw new ManifestError(problems);

  const ctx = {
    plugin,
    // Serialised once: the manifest is read when the server starts using the plugin and must not change
    // under it while it runs.
    manifestJson: JSON.stringify(manifest),
    capabilities: new Set(manifest.capabilities),
    webhookMaxBytes: manifest.webhook ? webhookMaxBytes(manifest) : 0,
    // An empty token is no token: an unset variable and an empty one mean the same to an operator.
    tokenDigest: typeof token === 'string' && token !== '' ? sha256(token) : null,
    maxBodyBytes,
    log: typeof log === 'function' ? log : () => {},
  };

  // Sockets whose request is being answered by the handler: a client error on one of them (a timeout while
  // its body is read) belongs to that exchange, which ends by closing the connection.
  const inFlight = new WeakSet();
  const server = http.createServer({
    headersTimeout: headersTimeoutMs,
    requestTimeout: Math.max(requestTimeoutMs, headersTimeoutMs),
    // How often Node checks the two timeouts above (30 s by default, which would stretch a 10 s limit).
    connectionsCheckingInterval: Math.min(1000, headersTimeoutMs),
  }, (req, res) => {
    const socket = req.socket;
    inFlight.add(socket);
    res.once('close', () => inFlight.delete(socket));
    handle(ctx, req, res).catch((err) => {
      // Only a bug in the kit reaches here; the process must survive it and the server get an answer.
      ctx.log(`faxbot-plugin-kit: internal error: ${describeForLog(err)}`);
      if (!res.headersSent) writeError(req, res, 503, Kind.UNAVAILABLE, 'internal plugin error');
      else res.destroy();
    });
  });
  server.headersTimeout = headersTimeoutMs;
  server.requestTimeout = Math.max(requestTimeoutMs, headersTimeoutMs);
  server.on('clientError', (err, socket) => answerClientError(err, socket, inFlight));
  return server;
}

/**
 * Requests Node could not parse, or that did not arrive in time, get the protocol's error body too.
 * `err.rawPacket` holds the bytes Node could not parse — the request, number included — so neither it nor the
 * error is logged.
 */
function answerClientError(err, socket, inFlight) {
  if (inFlight.has(socket) || !socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  let status = 400;
  let kind = Kind.BAD_REQUEST;
  let message = 'the request is not valid HTTP';
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    status = 431;
    message = 'the request headers are too large';
  } else if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    status = 408;
    kind = Kind.UNAVAILABLE;
    message = 'the request did not arrive in time';
  }
  const body = JSON.stringify({ error: { kind, message } });
  socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: application/json\r\n`
    + `content-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`);
}

async function handle(ctx, req, res) {
  const route = matchRoute(req.url || '');
  // Health first and without the token: the kubelet probes it and has none.
  if (route !== null && route.name === 'health') {
    if (req.method !== 'GET') return refuseMethod(req, res, 'GET');
    return answerHealth(ctx, req, res);
  }
  // The token before anything else, so that a caller without it learns nothing, not even which routes exist.
  if (ctx.tokenDigest !== null && !presentsToken(req, ctx.tokenDigest)) {
    return writeError(req, res, 401, Kind.UNAUTHENTICATED, 'missing or wrong plugin token');
  }
  if (route === null) return writeError(req, res, 404, Kind.NOT_FOUND, 'no such route');
  const method = METHOD_OF_ROUTE[route.name];
  if (req.method !== method) return refuseMethod(req, res, method);
  const version = req.headers[PROTOCOL_HEADER];
  // Absent is accepted (people try a plugin with curl); a different version is a server this kit cannot serve.
  if (version !== undefined && version.trim() !== '1') {
    return writeError(req, res, 400, Kind.BAD_REQUEST, 'this plugin speaks protocol 1');
  }
  try {
    switch (route.name) {
      case 'manifest':
        return write(req, res, 200, { 'content-type': 'application/json' }, ctx.manifestJson);
      case 'send': {
        const request = wire.parseSendRequest(parseJson(await readBody(req, ctx.maxBodyBytes)));
        const answer = wire.checkFaxAnswer(await call(ctx.plugin, 'send', request), 'send');
        return writeJson(req, res, 200, answer);
      }
      case 'status': {
        const answer = wire.checkFaxAnswer(await call(ctx.plugin, 'status', providerId(route)), 'status');
        return writeJson(req, res, 200, answer);
      }
      case 'cancel': {
        // The manifest is what the server goes by; a plugin that does not declare `cancel` is not asked.
        if (!ctx.capabilities.has('cancel')) throw new PluginError(Kind.UNSUPPORTED, 'this plugin does not cancel faxes');
        await call(ctx.plugin, 'cancel', providerId(route));
        return write(req, res, 204, {});
      }
      case 'webhook': {
        // Checked before the body is read: a plugin without callbacks reads none.
        if (!ctx.capabilities.has('webhook')) throw new PluginError(Kind.UNSUPPORTED, 'this plugin takes no callbacks');
        const request = wire.parseWebhookRequest(parseJson(await readBody(req, ctx.maxBodyBytes)));
        if (request.body.length > ctx.webhookMaxBytes) {
          throw new PluginError(Kind.REJECTED, 'callback larger than the plugin takes');
        }
        const answer = wire.checkWebhookAnswer(await call(ctx.plugin, 'webhook', request));
        return writeJson(req, res, 200, answer);
      }
      default:
        throw new Error(`route ${route.name} has no handler`);
    }
  } catch (err) {
    return answerFailure(ctx, req, res, route.name, err);
  }
}

function providerId(route) {
  try {
    return decodeURIComponent(route.rawId);
  } catch {
    throw new PluginError(Kind.BAD_REQUEST, 'the fax id is not valid percent-encoding');
  }
}

function refuseMethod(req, res, allowed) {
  return writeError(req, res, 405, Kind.BAD_REQUEST, `this route takes ${allowed} only`, null, { allow: allowed });
}

function answerFailure(ctx, req, res, routeName, err) {
  if (err instanceof Aborted) return undefined;
  if (err instanceof Refusal) return writeError(req, res, err.status, err.kind, err.message, null, err.headers);
  if (isPluginError(err)) {
    // An error from another copy of the kit is checked again rather than trusted.
    const retry = Number.isSafeInteger(err.retryAfterMs) && err.retryAfterMs >= 0 ? err.retryAfterMs : null;
    return writeError(req, res, statusOfKind(err.kind), err.kind, String(err.message), retry);
  }
  // Anything else is a bug or an unexpected failure in the plugin. Its text may hold anything (a provider's
  // answer, a number): the server gets a fixed message, the log a masked one for the plugin's author.
  ctx.log(`faxbot-plugin-kit: ${routeName} failed: ${describeForLog(err)}`);
  return writeError(req, res, 503, Kind.UNAVAILABLE, 'internal plugin error');
}

async function answerHealth(ctx, req, res) {
  let answer;
  try {
    answer = typeof ctx.plugin.health === 'function' ? await ctx.plugin.health() : { status: 'ok' };
  } catch (err) {
    if (isPluginError(err)) {
      answer = { status: 'failing', message: String(err.message) };
    } else {
      ctx.log(`faxbot-plugin-kit: health failed: ${describeForLog(err)}`);
      answer = { status: 'failing', message: 'the health check failed' };
    }
  }
  const { code, body } = wire.healthBody(answer);
  return writeJson(req, res, code, body);
}

/**
 * Creates the server and listens; resolves with the listening server.
 * @param {import('../index').Plugin} plugin
 * @param {import('../index').ServeOptions} [options]
 * @returns {Promise<http.Server>}
 */
function serve(plugin, options = {}) {
  const { host = '127.0.0.1', port = 8090, ...rest } = options;
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) {
    return Promise.reject(new TypeError('port must be an integer between 0 and 65535'));
  }
  let server;
  try {
    server = createServer(plugin, rest);
  } catch (err) {
    return Promise.reject(err);
  }
  return new Promise((resolve, reject) => {
    const failed = (err) => reject(err);
    server.once('error', failed);
    server.listen(port, host, () => {
      server.off('error', failed);
      resolve(server);
    });
  });
}

/**
 * `HOST:PORT` (`127.0.0.1:8090`, `[::1]:8090`) as the parts `serve` takes.
 * @param {string} text
 * @returns {{host: string, port: number}}
 */
function parseListen(text) {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]/]+)):([0-9]{1,5})$/.exec(String(text).trim());
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) {
    throw new TypeError('a listen address must be HOST:PORT, e.g. 127.0.0.1:8090 or [::1]:8090');
  }
  return { host: m[1] !== undefined ? m[1] : m[2], port };
}

/**
 * The base URL a listening server answers on, e.g. `http://127.0.0.1:8090` (with the real port for port 0).
 * @param {http.Server} server
 * @returns {string}
 */
function serverUrl(server) {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the server is not listening on TCP');
  const host = address.family === 'IPv6' || address.family === 6 ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

module.exports = {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_HEADERS_TIMEOUT_MS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  PROTOCOL_HEADER,
  createServer,
  serve,
  parseListen,
  serverUrl,
  matchRoute,
};
