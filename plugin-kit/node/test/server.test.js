'use strict';
// The HTTP side: every route, every refusal, the token, the size limits, the error mapping and the PHI
// rules, through real sockets.

const test = require('node:test');
const assert = require('node:assert/strict');
const { createServer, serve, parseListen, serverUrl, PluginError, Kind, DEFAULT_MAX_BODY_BYTES } = require('..');
const { MockFaxbot } = require('../testing');
const { goodManifest, ScriptedPlugin, rawExchange, logCollector } = require('./helpers');

const NUMBER = '+15555550100';
const DIGITS = '5555550100';
const PDF_BASE64 = Buffer.from('%PDF-1.4\n%%EOF\n').toString('base64');

function sendBody(overrides = {}) {
  return {
    jobId: 'job-1',
    to: NUMBER,
    idempotencyKey: 'key-1',
    pages: 1,
    document: { contentType: 'application/pdf', base64: PDF_BASE64 },
    ...overrides,
  };
}

async function withMock(pluginOptions, options, fn) {
  const plugin = new ScriptedPlugin(pluginOptions);
  const mock = await MockFaxbot.start(plugin, options);
  try {
    await fn(mock, plugin);
  } finally {
    await mock.close();
  }
}

function assertError(answer, status, kind) {
  assert.equal(answer.status, status, JSON.stringify(answer.body));
  assert.equal(answer.body.error.kind, kind, JSON.stringify(answer.body));
  assert.equal(typeof answer.body.error.message, 'string');
  assert.match(answer.headers['content-type'], /^application\/json/);
}

test('every route answers as the protocol says', async () => {
  const log = logCollector();
  await withMock({}, { log }, async (mock, plugin) => {
    const health = await mock.health();
    assert.deepEqual([health.status, health.body], [200, { status: 'ok' }]);

    const manifest = await mock.manifest();
    assert.deepEqual([manifest.status, manifest.body], [200, goodManifest()]);

    const sent = await mock.request('POST', '/v1/send', { body: sendBody() });
    assert.deepEqual([sent.status, sent.body], [200, { providerId: 'p-1', status: 'in_progress', checkAfterMs: 2000 }]);
    const [, req] = plugin.calls.find(([m]) => m === 'send');
    assert.equal(req.to, NUMBER);
    assert.equal(req.idempotencyKey, 'key-1');
    assert.equal(req.jobId, 'job-1');
    assert.equal(req.pages, 1);
    assert.equal(req.document.contentType, 'application/pdf');
    assert.equal(req.document.bytes.toString('latin1'), '%PDF-1.4\n%%EOF\n', 'the kit hands over the decoded bytes');

    const status = await mock.status('p-1');
    assert.deepEqual([status.status, status.body], [200, { providerId: 'p-1', status: 'delivered' }]);

    const cancel = await mock.cancel('p-1');
    assert.deepEqual([cancel.status, cancel.body], [204, null]);

    const webhook = await mock.webhook('{"id":1}', { 'X-Acme-Signature': 'abc' }, 'https://fax.example.org/webhooks/acme-fax');
    assert.deepEqual([webhook.status, webhook.body], [200, { events: [] }]);
    const [, callback] = plugin.calls.find(([m]) => m === 'webhook');
    assert.equal(callback.body.toString(), '{"id":1}');
    assert.deepEqual(callback.headers, [['x-acme-signature', 'abc']]);
    assert.equal(callback.url, 'https://fax.example.org/webhooks/acme-fax');
  });
  assert.deepEqual(log.lines, []);
});

test('the send request may omit or null its optional fields', async () => {
  await withMock({}, {}, async (mock, plugin) => {
    for (const body of [sendBody({ pages: null, document: null }), { jobId: 'j', to: NUMBER, idempotencyKey: 'k' }]) {
      const answer = await mock.request('POST', '/v1/send', { body });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
    }
    const requests = plugin.calls.filter(([m]) => m === 'send').map(([, r]) => r);
    for (const r of requests) assert.deepEqual([r.pages, r.document], [null, null]);
  });
});

test('provider ids are percent-decoded from one path segment', async () => {
  await withMock({}, {}, async (mock, plugin) => {
    assert.equal((await mock.status('a/b c?d')).status, 200);
    assert.equal((await mock.cancel('x%y')).status, 204);
    assert.deepEqual(plugin.calls.map(([m, a]) => [m, a]), [['status', 'a/b c?d'], ['cancel', 'x%y']]);
    assertError(await mock.request('GET', '/v1/faxes/%E0%A4%A'), 400, 'bad_request');
  });
});

test('the token: every route but health needs it, and nothing else will do', async () => {
  await withMock({}, { token: 'the-token' }, async (mock, plugin) => {
    const routes = [
      ['GET', '/v1/manifest'],
      ['POST', '/v1/send'],
      ['GET', '/v1/faxes/p-1'],
      ['POST', '/v1/faxes/p-1/cancel'],
      ['POST', '/v1/webhook'],
      ['GET', '/v1/nowhere'],
    ];
    const wrong = [
      ['none', {}, null],
      ['wrong token', {}, 'the-tokem'],
      ['longer token', {}, 'the-token-and-more'],
      ['prefix of the token', {}, 'the-'],
      ['another scheme', { authorization: 'Basic the-token' }, null],
      ['bare token', { authorization: 'the-token' }, null],
      ['empty bearer', { authorization: 'Bearer ' }, null],
    ];
    for (const [method, path] of routes) {
      for (const [what, headers, token] of wrong) {
        const answer = await mock.request(method, path, { headers, token, body: method === 'POST' ? sendBody() : undefined });
        assertError(answer, 401, 'unauthenticated');
        assert.equal(answer.body.error.message, 'missing or wrong plugin token', `${what} on ${path}`);
      }
    }
    assert.deepEqual(plugin.calls.filter(([m]) => m !== 'health'), [], 'the plugin was never called');
    assert.equal((await mock.request('GET', '/v1/health', { token: null })).status, 200, 'health needs no token');
    assert.equal((await mock.request('GET', '/v1/manifest', { token: null, headers: { authorization: 'bearer the-token' } })).status,
      200, 'the scheme is case-insensitive');
    assert.equal((await mock.manifest()).status, 200);
  });
});

test('without a token (or with an empty one) every route is open', async () => {
  for (const token of [null, '']) {
    await withMock({}, { token }, async (mock) => {
      assert.equal((await mock.request('GET', '/v1/manifest', { token: null })).status, 200);
    });
  }
});

test('unknown routes, wrong methods and another protocol version', async () => {
  await withMock({}, {}, async (mock, plugin) => {
    for (const path of ['/', '/v1', '/v2/health', '/v1/faxes', '/v1/faxes/', '/v1/faxes/a/b', '/v1/faxes/a/cancel/x', '/v1/sendx']) {
      assertError(await mock.request('GET', path), 404, 'not_found');
    }
    const wrongMethods = [
      ['POST', '/v1/health', 'GET'],
      ['PUT', '/v1/manifest', 'GET'],
      ['GET', '/v1/send', 'POST'],
      ['DELETE', '/v1/faxes/p-1', 'GET'],
      ['GET', '/v1/faxes/p-1/cancel', 'POST'],
      ['GET', '/v1/webhook', 'POST'],
    ];
    for (const [method, path, allowed] of wrongMethods) {
      const answer = await mock.request(method, path);
      assertError(answer, 405, 'bad_request');
      assert.equal(answer.headers.allow, allowed, `${method} ${path}`);
    }
    assertError(await mock.request('GET', '/v1/manifest', { headers: { 'faxbot-plugin-protocol': '2' } }), 400, 'bad_request');
    assert.equal((await mock.request('GET', '/v1/manifest', { headers: { 'faxbot-plugin-protocol': ' 1 ' } })).status, 200);
    assert.equal((await mock.request('GET', '/v1/manifest?x=1')).status, 200, 'a query string does not change the route');
    assert.deepEqual(plugin.calls.filter(([m]) => m !== 'health'), []);
  });
});

test('malformed send requests are refused without calling the plugin, and without echoing them', async () => {
  await withMock({}, {}, async (mock, plugin) => {
    const table = [
      ['not JSON', `{"to":"${NUMBER}",`],
      ['a list', [NUMBER]],
      ['a string', JSON.stringify(NUMBER)],
      ['null', 'null'],
      ['empty', ''],
      ['missing jobId', sendBody({ jobId: undefined })],
      ['missing to', sendBody({ to: undefined })],
      ['missing idempotencyKey', sendBody({ idempotencyKey: undefined })],
      ['to as a number', sendBody({ to: 15555550100 })],
      ['jobId as a number', sendBody({ jobId: 1 })],
      ['unknown field named like a number', { ...sendBody(), [NUMBER]: 1 }],
      ['unknown field', { ...sendBody(), priority: 'high' }],
      ['pages not an integer', sendBody({ pages: 1.5 })],
      ['pages as a string', sendBody({ pages: '1' })],
      ['document a string', sendBody({ document: PDF_BASE64 })],
      ['document of another type', sendBody({ document: { contentType: 'image/tiff', base64: PDF_BASE64 } })],
      ['document without base64', sendBody({ document: { contentType: 'application/pdf' } })],
      ['document with an extra field', sendBody({ document: { contentType: 'application/pdf', base64: PDF_BASE64, to: NUMBER } })],
      ['base64 not padded', sendBody({ document: { contentType: 'application/pdf', base64: 'JVBERi0' } })],
      ['base64 with a space', sendBody({ document: { contentType: 'application/pdf', base64: 'JVBE Ri0x' } })],
      ['base64 url alphabet', sendBody({ document: { contentType: 'application/pdf', base64: 'JVBE-_0x' } })],
      ['base64 with trailing bits', sendBody({ document: { contentType: 'application/pdf', base64: 'QR==' } })],
      ['base64 with the number', sendBody({ document: { contentType: 'application/pdf', base64: `${DIGITS}!!` } })],
    ];
    for (const [what, body] of table) {
      const raw = typeof body === 'string' ? body : JSON.stringify(body);
      const answer = await mock.request('POST', '/v1/send', { body: raw });
      assertError(answer, 400, 'bad_request');
      assert.ok(!JSON.stringify(answer.body).includes('5555'), `${what} echoed the number: ${answer.body.error.message}`);
      assert.ok(!answer.body.error.message.includes('priority'), `${what} echoed a field name`);
    }
    assert.deepEqual(plugin.calls.filter(([m]) => m === 'send'), []);
    const ok = await mock.request('POST', '/v1/send', {
      body: sendBody({ document: { contentType: 'application/pdf', base64: 'QQ==' } }),
    });
    assert.equal(ok.status, 200, 'canonical padded base64 is taken');
  });
});

test('malformed webhook requests are refused', async () => {
  const good = { url: 'https://x/webhooks/acme-fax', headers: [['a', 'b']], bodyBase64: 'e30=' };
  await withMock({}, {}, async (mock, plugin) => {
    const table = [
      ['missing url', { ...good, url: undefined }],
      ['headers not pairs', { ...good, headers: [['a']] }],
      ['headers as an object', { ...good, headers: { a: 'b' } }],
      ['header value not a string', { ...good, headers: [['a', 1]] }],
      ['body not base64', { ...good, bodyBase64: '{}' }],
      ['unknown field', { ...good, body: '{}' }],
    ];
    for (const [what, body] of table) {
      assertError(await mock.request('POST', '/v1/webhook', { body: JSON.stringify(body) }), 400, 'bad_request', what);
    }
    assert.equal((await mock.request('POST', '/v1/webhook', { body: good })).status, 200);
    assert.equal(plugin.calls.filter(([m]) => m === 'webhook').length, 1);
  });
});

test('each PluginError kind has its status, its masked message and its retry hint', async () => {
  const table = [
    [Kind.BAD_REQUEST, 400],
    [Kind.UNAUTHENTICATED, 401],
    [Kind.CREDENTIALS, 502],
    [Kind.REJECTED, 422],
    [Kind.NOT_FOUND, 404],
    [Kind.RATE_LIMITED, 429],
    [Kind.UNAVAILABLE, 503],
    [Kind.UNSUPPORTED, 501],
  ];
  for (const [kind, status] of table) {
    let thrown;
    await withMock({ status: async () => { throw thrown; } }, {}, async (mock) => {
      thrown = new PluginError(kind, `cannot reach +1 (555) 555-0100 for job 7`);
      const answer = await mock.status('p-1');
      assert.equal(answer.status, status, kind);
      assert.deepEqual(answer.body, { error: { kind, message: 'cannot reach …0100 for job 7' } }, kind);
      assert.equal(answer.headers['retry-after'], undefined, kind);
    });
  }
  const retries = [[0, '0'], [1, '1'], [999, '1'], [1000, '1'], [1001, '2'], [1500.2, '2'], [90_000, '90']];
  for (const [ms, header] of retries) {
    await withMock({ send: async () => { throw new PluginError(Kind.RATE_LIMITED, 'slow down', ms); } }, {}, async (mock) => {
      const answer = await mock.send(NUMBER);
      assertError(answer, 429, 'rate_limited');
      assert.equal(answer.body.error.retryAfterMs, Math.ceil(ms));
      assert.equal(answer.headers['retry-after'], header, String(ms));
    });
  }
});

test('PluginError refuses what the protocol cannot carry', () => {
  assert.throws(() => new PluginError('busy', 'x'), TypeError);
  assert.throws(() => new PluginError(Kind.UNAVAILABLE, 'x', -1), TypeError);
  assert.throws(() => new PluginError(Kind.UNAVAILABLE, 'x', Infinity), TypeError);
  assert.throws(() => new PluginError(Kind.UNAVAILABLE), TypeError);
  assert.equal(new PluginError(Kind.UNAVAILABLE, 'x').status, 503);
});

test('any other exception is "internal plugin error", and its text reaches only a masked log line', async () => {
  const log = logCollector();
  const secret = `provider said: no route to ${NUMBER} (account 1234567)`;
  const failures = {
    send: async () => { throw new Error(secret); },
    status: async () => { throw new TypeError(secret); },
    cancel: async () => { throw secret; }, // eslint-disable-line no-throw-literal
    webhook: () => { throw new RangeError(secret); },
    health: () => { throw new Error(secret); },
  };
  await withMock(failures, { log }, async (mock) => {
    const answers = [
      await mock.send(NUMBER),
      await mock.status('p-1'),
      await mock.cancel('p-1'),
      await mock.webhook('{}'),
    ];
    for (const answer of answers) {
      assert.deepEqual([answer.status, answer.body], [503, { error: { kind: 'unavailable', message: 'internal plugin error' } }]);
    }
    const health = await mock.health();
    assert.deepEqual([health.status, health.body], [503, { status: 'failing', message: 'the health check failed' }]);
  });
  assert.equal(log.lines.length, 5);
  for (const line of log.lines) {
    assert.match(line, /^faxbot-plugin-kit: (send|status|cancel|webhook|health) failed: /);
    assert.ok(!line.includes(DIGITS) && !line.includes('1234567'), line);
    assert.match(line, /…0100/);
  }
});

test('answers that break the protocol are internal errors, not passed on', async () => {
  const table = [
    ['not an object', () => 'sim-1'],
    ['no providerId', () => ({ status: 'delivered' })],
    ['blank providerId', () => ({ providerId: ' ', status: 'delivered' })],
    ['providerId too long', () => ({ providerId: 'x'.repeat(201), status: 'delivered' })],
    ['providerId with a newline', () => ({ providerId: 'a\nb', status: 'delivered' })],
    ['unknown status', () => ({ providerId: 'p', status: 'lost' })],
    ['unknown field', () => ({ providerId: 'p', status: 'delivered', eta: 3 })],
    ['negative checkAfterMs', () => ({ providerId: 'p', status: 'queued', checkAfterMs: -1 })],
    ['error not a string', () => ({ providerId: 'p', status: 'failed', error: { code: 1 } })],
  ];
  for (const [what, answer] of table) {
    const log = logCollector();
    await withMock({ status: async () => answer() }, { log }, async (mock) => {
      assertError(await mock.status('p'), 503, 'unavailable');
    });
    assert.equal(log.lines.length, 1, what);
  }
  const log = logCollector();
  await withMock({ webhook: async () => [{ providerId: 'p', status: 'delivered' }] }, { log }, async (mock) => {
    assertError(await mock.webhook('{}'), 503, 'unavailable');
  });
  assert.match(log.lines[0], /events/);
});

test('fax errors and health messages are masked too', async () => {
  await withMock({
    status: async (id) => ({ providerId: id, status: 'failed', error: `busy: ${NUMBER}` }),
    health: async () => ({ status: 'failing', message: `cannot dial ${NUMBER}` }),
  }, {}, async (mock) => {
    assert.deepEqual((await mock.status('p')).body, { providerId: 'p', status: 'failed', error: 'busy: …0100' });
    const health = await mock.health();
    assert.deepEqual([health.status, health.body], [503, { status: 'failing', message: 'cannot dial …0100' }]);
  });
});

test('health: ok, failing, a PluginError, or anything unclear', async () => {
  const table = [
    [() => ({ status: 'ok' }), 200, { status: 'ok' }],
    [async () => ({ status: 'ok', message: 'extra' }), 200, { status: 'ok' }],
    [() => ({ status: 'failing', message: 'provider credentials missing' }), 503, { status: 'failing', message: 'provider credentials missing' }],
    [() => ({ status: 'failing' }), 503, { status: 'failing', message: 'the plugin reports it is failing' }],
    [() => { throw new PluginError(Kind.CREDENTIALS, 'key refused'); }, 503, { status: 'failing', message: 'key refused' }],
    [() => true, 503, { status: 'failing', message: "the plugin's health check answered something other than ok or failing" }],
    [() => undefined, 503, { status: 'failing', message: "the plugin's health check answered something other than ok or failing" }],
  ];
  for (const [health, status, body] of table) {
    await withMock({ health }, { log: null }, async (mock) => {
      const answer = await mock.health();
      assert.deepEqual([answer.status, answer.body], [status, body]);
    });
  }
});

test('cancel and webhook are refused unread when the manifest does not declare them', async () => {
  const manifest = goodManifest({ capabilities: ['send', 'status'], webhook: undefined });
  await withMock({ manifest }, {}, async (mock, plugin) => {
    assertError(await mock.cancel('p-1'), 501, 'unsupported');
    assertError(await mock.webhook('{}'), 501, 'unsupported');
    assert.deepEqual(plugin.calls.filter(([m]) => m === 'cancel' || m === 'webhook'), []);
  });
});

test('the base class answers unsupported for what a plugin did not write', async () => {
  const { Plugin } = require('..');
  class Minimal extends Plugin {
    manifest() {
      return goodManifest();
    }
  }
  const mock = await MockFaxbot.start(new Minimal());
  try {
    assert.deepEqual((await mock.health()).body, { status: 'ok' });
    for (const answer of [await mock.send(NUMBER), await mock.status('p'), await mock.cancel('p'), await mock.webhook('{}')]) {
      assertError(answer, 501, 'unsupported');
    }
  } finally {
    await mock.close();
  }
  assert.throws(() => new Plugin().manifest(), /must implement manifest/);
});

test('a callback larger than the manifest allows is rejected before the plugin sees it', async () => {
  const manifest = goodManifest({ webhook: { verification: 'HMAC', maxBytes: 16 } });
  await withMock({ manifest }, {}, async (mock, plugin) => {
    assert.equal((await mock.webhook('x'.repeat(16))).status, 200);
    assertError(await mock.webhook('x'.repeat(17)), 422, 'rejected');
    assert.equal(plugin.calls.filter(([m]) => m === 'webhook').length, 1);
  });
});

test('a body needs a Content-Length', async () => {
  await withMock({}, { token: null }, async (mock, plugin) => {
    const body = JSON.stringify(sendBody());
    const chunked = `POST /v1/send HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`;
    const answer = await rawExchange(mock.url, chunked);
    assert.equal(answer.status, 411);
    assert.equal(answer.body.error.kind, 'bad_request');
    assert.equal(answer.headers.connection, 'close', 'the unread body is not drained');
    assert.deepEqual(plugin.calls.filter(([m]) => m === 'send'), []);
  });
});

test('a Content-Length over the limit is refused without reading the body', async () => {
  await withMock({}, { token: null, maxBodyBytes: 1024 }, async (mock, plugin) => {
    // Only the headers are sent; the 413 must come back anyway, so it cannot have waited for the body.
    const headersOnly = 'POST /v1/send HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1025\r\n\r\n';
    const answer = await rawExchange(mock.url, headersOnly, { waitMs: 5000 });
    assert.equal(answer.status, 413);
    assert.deepEqual(answer.body, { error: { kind: 'rejected', message: 'the request body is larger than this plugin accepts (1 KiB)' } });
    assert.equal(answer.headers.connection, 'close');
    assert.ok(answer.closedByServer, 'the server ends the connection rather than waiting for the body');
    // At the limit, the body is read.
    const body = JSON.stringify(sendBody({ document: null, jobId: 'j'.repeat(1024 - JSON.stringify(sendBody({ document: null, jobId: '' })).length) }));
    assert.equal(Buffer.byteLength(body), 1024);
    assert.equal((await mock.request('POST', '/v1/send', { body })).status, 200);
    assert.equal(plugin.calls.filter(([m]) => m === 'send').length, 1);
  });
  await withMock({}, { token: null }, async (mock) => {
    const huge = `POST /v1/webhook HTTP/1.1\r\nhost: x\r\ncontent-length: ${DEFAULT_MAX_BODY_BYTES + 1}\r\n\r\n`;
    const answer = await rawExchange(mock.url, huge, { waitMs: 5000 });
    assert.equal(answer.status, 413);
    assert.match(answer.body.error.message, /48 MiB/);
  });
});

test('a body longer than its Content-Length is cut at that length', async () => {
  await withMock({}, { token: null }, async (mock, plugin) => {
    const body = JSON.stringify(sendBody());
    // Bytes past the declared length are not part of this body: the plugin gets exactly the declared
    // request, and the rest (not a request either) ends the connection.
    const text = `POST /v1/send HTTP/1.1\r\nhost: x\r\ncontent-length: ${body.length}\r\n\r\n${body}{"to":"+15555550199"}`;
    const answer = await rawExchange(mock.url, text);
    assert.ok(answer.closedByServer || answer.status === null, 'the connection was cut');
    const sent = plugin.calls.filter(([m]) => m === 'send').map(([, r]) => r);
    assert.equal(sent.length, 1);
    assert.deepEqual({ ...sent[0], document: sent[0].document.base64 }, { ...sendBody(), document: PDF_BASE64 });
  });
});

test('a body that never arrives is not waited for beyond the request timeout', async () => {
  await withMock({}, { token: null, headersTimeoutMs: 200, requestTimeoutMs: 300 }, async (mock, plugin) => {
    const text = 'POST /v1/send HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{"jobId"';
    const started = Date.now();
    const answer = await rawExchange(mock.url, text, { waitMs: 5000 });
    assert.ok(answer.closedByServer || answer.status === null, 'the connection was ended by the server');
    assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
    assert.deepEqual(plugin.calls.filter(([m]) => m === 'send'), []);
  });
});

test('the server sets its timeouts', () => {
  const plugin = new ScriptedPlugin();
  const defaults = createServer(plugin);
  assert.equal(defaults.headersTimeout, 10_000);
  assert.equal(defaults.requestTimeout, 60_000);
  const custom = createServer(plugin, { headersTimeoutMs: 2000, requestTimeoutMs: 5000 });
  assert.deepEqual([custom.headersTimeout, custom.requestTimeout], [2000, 5000]);
});

test('requests Node cannot parse get the error body too', async () => {
  await withMock({}, { token: null }, async (mock) => {
    const answer = await rawExchange(mock.url, `NONSENSE ${NUMBER}\r\n\r\n`);
    assert.equal(answer.status, 400);
    assert.equal(answer.body.error.kind, 'bad_request');
    assert.ok(!answer.raw.includes(DIGITS));
  });
});

test('serve listens where it is told, port 0 included; parseListen reads HOST:PORT', async () => {
  const server = await serve(new ScriptedPlugin(), { port: 0 });
  try {
    assert.match(serverUrl(server), /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.notEqual(server.address().port, 0);
  } finally {
    await new Promise((r) => server.close(r));
  }
  await assert.rejects(serve(new ScriptedPlugin({ manifest: goodManifest({ id: 'test' }) }), { port: 0 }), /built-in/);
  await assert.rejects(serve(new ScriptedPlugin(), { port: 70000 }), TypeError);

  assert.deepEqual(parseListen('127.0.0.1:8090'), { host: '127.0.0.1', port: 8090 });
  assert.deepEqual(parseListen(' 0.0.0.0:0 '), { host: '0.0.0.0', port: 0 });
  assert.deepEqual(parseListen('[::1]:9000'), { host: '::1', port: 9000 });
  assert.deepEqual(parseListen('localhost:1'), { host: 'localhost', port: 1 });
  for (const bad of ['8090', '127.0.0.1', '127.0.0.1:', ':8090', '127.0.0.1:65536', '::1:8090', 'http://127.0.0.1:8090', '127.0.0.1:80a']) {
    assert.throws(() => parseListen(bad), TypeError, bad);
  }
});

test('createServer checks its options', () => {
  const plugin = new ScriptedPlugin();
  assert.throws(() => createServer(null), TypeError);
  assert.throws(() => createServer({}), TypeError);
  assert.throws(() => createServer(plugin, { token: 42 }), TypeError);
  assert.throws(() => createServer(plugin, { maxBodyBytes: 0 }), TypeError);
  assert.throws(() => createServer(plugin, { headersTimeoutMs: -1 }), TypeError);
  assert.throws(() => createServer(plugin, { log: 'stderr' }), TypeError);
});
