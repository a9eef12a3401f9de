'use strict';
// The simulated provider: each conformance number's branch, idempotency, cancel, and callbacks — forged
// ones above all — directly and through the HTTP the server uses.

const test = require('node:test');
const assert = require('node:assert/strict');
const { SimulatedProvider, Plugin, PluginError } = require('..');
const { MockFaxbot, signSimWebhook } = require('../testing');
const { goodManifest } = require('./helpers');

const SECRET = 'webhook-secret';

function request(to, key = `key-${to}`) {
  return { jobId: 'job', to, idempotencyKey: key, pages: null, document: null };
}

async function refusal(promise) {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof PluginError, String(err));
    return { kind: err.kind, message: err.message, retryAfterMs: err.retryAfterMs };
  }
  throw new Error('expected a PluginError');
}

/** A signed callback as the server forwards it. */
function callback(body, { secret = SECRET, headers = null } = {}) {
  const raw = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const pairs = headers || [['content-type', 'application/json'], ['x-sim-signature', signSimWebhook(secret, raw)]];
  return { url: 'https://faxbot.example/webhooks/acme-fax', headers: pairs, bodyBase64: raw.toString('base64'), body: raw };
}

test('the conformance numbers choose their branch', async () => {
  const table = [
    // [to, what send does, the state status then reports]
    ['+15555550100', 'accepted', { status: 'delivered' }],
    ['+15555550101', 'accepted', { status: 'failed', error: 'no answer from the receiving fax machine' }],
    ['+15555550102', { kind: 'rejected', message: 'the provider refused the destination', retryAfterMs: null }, null],
    ['+15555550103', { kind: 'unavailable', message: 'the provider is busy', retryAfterMs: 1000 }, null],
    ['+4930123456', 'accepted', { status: 'delivered' }],
    ['+15555550104', 'accepted', { status: 'delivered' }],
  ];
  for (const [to, atSend, final] of table) {
    const sim = new SimulatedProvider();
    if (atSend === 'accepted') {
      const sent = await sim.send(request(to));
      assert.deepEqual(sent, { providerId: 'sim-1', status: 'in_progress', checkAfterMs: 0 }, to);
      assert.deepEqual(await sim.status('sim-1'), { providerId: 'sim-1', ...final }, to);
      assert.deepEqual(await sim.status('sim-1'), { providerId: 'sim-1', ...final }, `${to}: a final state stays`);
    } else {
      assert.deepEqual(await refusal(sim.send(request(to))), atSend, to);
      assert.deepEqual(await refusal(sim.status('sim-1')), { kind: 'not_found', message: 'no such fax', retryAfterMs: null },
        `${to}: a refused send creates no fax`);
    }
  }
});

test('destinations that are not E.164 are rejected', async () => {
  const sim = new SimulatedProvider();
  for (const to of ['15555550100', '+05555550100', '+123456', '+1234567890123456', '+1555555010O', ' +15555550100', '', 15555550100]) {
    assert.deepEqual(await refusal(sim.send(request(to))), { kind: 'rejected', message: 'invalid destination', retryAfterMs: null },
      String(to));
  }
  assert.equal((await sim.send(request('+1234567'))).providerId, 'sim-1', 'seven digits is the shortest');
  assert.equal((await sim.send(request('+123456789012345'))).providerId, 'sim-2', 'fifteen is the longest');
});

test('the same idempotency key answers the same fax, in its current state', async () => {
  const sim = new SimulatedProvider();
  const first = await sim.send(request('+15555550101', 'k'));
  assert.deepEqual(await sim.send(request('+15555550101', 'k')), first);
  await sim.status(first.providerId);
  assert.deepEqual(await sim.send(request('+15555550101', 'k')), {
    providerId: first.providerId, status: 'failed', error: 'no answer from the receiving fax machine',
  });
  const other = await sim.send(request('+15555550101', 'k2'));
  assert.equal(other.providerId, 'sim-2', 'another key is another fax');
  // A busy attempt leaves nothing behind, so a later attempt with the same key is a fresh send.
  assert.equal((await refusal(sim.send(request('+15555550103', 'busy')))).kind, 'unavailable');
  assert.equal((await refusal(sim.send(request('+15555550103', 'busy')))).kind, 'unavailable');
});

test('cancel stops an unfinished fax, leaves a finished one, and knows no stranger', async () => {
  const sim = new SimulatedProvider();
  const { providerId } = await sim.send(request('+15555550100', 'a'));
  await sim.cancel(providerId);
  assert.deepEqual(await sim.status(providerId), { providerId, status: 'failed', error: 'cancelled' });
  const done = (await sim.send(request('+15555550100', 'b'))).providerId;
  assert.equal((await sim.status(done)).status, 'delivered');
  await sim.cancel(done);
  assert.deepEqual(await sim.status(done), { providerId: done, status: 'delivered' }, 'a finished fax stays finished');
  assert.equal((await refusal(sim.cancel('sim-99'))).kind, 'not_found');
});

test('the oldest faxes are forgotten past maxFaxes', async () => {
  const sim = new SimulatedProvider({ maxFaxes: 2 });
  await sim.send(request('+15555550100', 'a'));
  await sim.send(request('+15555550100', 'b'));
  await sim.send(request('+15555550100', 'c'));
  assert.equal((await refusal(sim.status('sim-1'))).kind, 'not_found');
  assert.equal((await sim.status('sim-2')).status, 'delivered');
  assert.equal((await sim.send(request('+15555550100', 'a'))).providerId, 'sim-4', 'its key is forgotten with it');
});

test('a signed callback finishes the fax it names', async () => {
  const sim = new SimulatedProvider({ webhookSecret: SECRET });
  const { providerId } = await sim.send(request('+15555550100'));
  const answer = await sim.webhook(callback({ providerId, status: 'failed', error: 'line dropped' }));
  assert.deepEqual(answer, { events: [{ providerId, status: 'failed', error: 'line dropped' }] });
  assert.deepEqual(await sim.status(providerId), { providerId, status: 'failed', error: 'line dropped' });

  // A finished fax keeps its state; the event reports that state, so callbacks and status agree.
  const replay = await sim.webhook(callback({ providerId, status: 'delivered' }));
  assert.deepEqual(replay, { events: [{ providerId, status: 'failed', error: 'line dropped' }] });

  const second = (await sim.send(request('+15555550101', 'k2'))).providerId;
  assert.deepEqual(await sim.webhook(callback({ providerId: second, status: 'delivered' })),
    { events: [{ providerId: second, status: 'delivered' }] }, 'the callback, not the number, decides');
  assert.deepEqual(await sim.webhook(callback({ providerId: second, status: 'failed' })),
    { events: [{ providerId: second, status: 'delivered' }] });

  // An unknown fax is reported as the callback says; the server ignores ids it does not know.
  assert.deepEqual(await sim.webhook(callback({ providerId: 'sim-77', status: 'failed', error: null })),
    { events: [{ providerId: 'sim-77', status: 'failed', error: 'transmission failed' }] });
  // Without the decoded body, the base64 one is verified.
  const { body, ...wireOnly } = callback({ providerId: 'sim-78', status: 'delivered' });
  assert.ok(body);
  assert.deepEqual(await sim.webhook(wireOnly), { events: [{ providerId: 'sim-78', status: 'delivered' }] });
});

test('forged callbacks are unauthenticated', async () => {
  const sim = new SimulatedProvider({ webhookSecret: SECRET });
  const { providerId } = await sim.send(request('+15555550100'));
  const body = JSON.stringify({ providerId, status: 'failed', error: 'forged' });
  const good = signSimWebhook(SECRET, body);
  const forgeries = [
    ['no signature', callback(body, { headers: [['content-type', 'application/json']] })],
    ['wrong secret', callback(body, { secret: 'guess' })],
    ['signature of another body', callback(body, { headers: [['x-sim-signature', signSimWebhook(SECRET, `${body} `)]] })],
    ['upper-case hex', callback(body, { headers: [['x-sim-signature', good.toUpperCase()]] })],
    ['truncated', callback(body, { headers: [['x-sim-signature', good.slice(0, 63)]] })],
    ['with a prefix', callback(body, { headers: [['x-sim-signature', `sha256=${good}`]] })],
    ['empty', callback(body, { headers: [['x-sim-signature', '']] })],
    ['two signatures, one good', callback(body, { headers: [['x-sim-signature', good], ['x-sim-signature', '0'.repeat(64)]] })],
    ['two good signatures', callback(body, { headers: [['x-sim-signature', good], ['X-Sim-Signature', good]] })],
    ['signature in another header', callback(body, { headers: [['x-signature', good]] })],
  ];
  for (const [what, cb] of forgeries) {
    assert.deepEqual(await refusal(sim.webhook(cb)),
      { kind: 'unauthenticated', message: 'the callback is not signed by the simulated provider', retryAfterMs: null }, what);
  }
  assert.deepEqual(await sim.status(providerId), { providerId, status: 'delivered' }, 'no forgery changed the fax');
  assert.equal((await sim.webhook(callback(body, { headers: [['X-SIM-SIGNATURE', good]] }))).events.length, 1,
    'the header name is case-insensitive');
});

test('without a secret no callback is authentic', async () => {
  for (const webhookSecret of [undefined, null, '', Buffer.alloc(0)]) {
    const sim = new SimulatedProvider({ webhookSecret });
    // Signed with the empty key, which anybody can compute.
    const cb = callback({ providerId: 'sim-1', status: 'delivered' }, { secret: '' });
    assert.equal((await refusal(sim.webhook(cb))).kind, 'unauthenticated', String(webhookSecret));
  }
});

test('an authentic but malformed callback is a bad request', async () => {
  const sim = new SimulatedProvider({ webhookSecret: SECRET });
  const table = [
    ['not JSON', '{"providerId":'],
    ['a list', '[]'],
    ['no providerId', { status: 'delivered' }],
    ['empty providerId', { providerId: '', status: 'delivered' }],
    ['unknown status', { providerId: 'sim-1', status: 'queued' }],
    ['error not text', { providerId: 'sim-1', status: 'failed', error: 5 }],
    ['unknown field', { providerId: 'sim-1', status: 'delivered', at: 'now' }],
  ];
  for (const [what, body] of table) {
    assert.equal((await refusal(sim.webhook(callback(body)))).kind, 'bad_request', what);
  }
});

test('through HTTP: the plugin a template builds on the simulated provider', async () => {
  class SimPlugin extends Plugin {
    constructor() {
      super();
      this.sim = new SimulatedProvider({ webhookSecret: SECRET });
    }

    manifest() {
      return goodManifest({ pollIntervalMs: 1000, webhook: { verification: 'HMAC-SHA256 of the body in X-Sim-Signature' } });
    }

    send(req) { return this.sim.send(req); }

    status(id) { return this.sim.status(id); }

    cancel(id) { return this.sim.cancel(id); }

    webhook(req) { return this.sim.webhook(req); }
  }
  const mock = await MockFaxbot.start(new SimPlugin());
  try {
    const table = [
      ['+15555550100', 200, 'delivered'],
      ['+15555550101', 200, 'failed'],
      ['+15555550102', 422, null],
      ['+15555550103', 503, null],
    ];
    for (const [to, status, final] of table) {
      const sent = await mock.send(to);
      assert.equal(sent.status, status, to);
      if (final !== null) assert.equal((await mock.status(sent.body.providerId)).body.status, final, to);
    }
    const busy = await mock.send('+15555550103');
    assert.deepEqual([busy.body.error.retryAfterMs, busy.headers['retry-after']], [1000, '1']);

    const again = await mock.send('+15555550100', { idempotencyKey: 'same' });
    assert.deepEqual((await mock.send('+15555550100', { idempotencyKey: 'same', jobId: 'other' })).body, again.body);

    const body = JSON.stringify({ providerId: again.body.providerId, status: 'delivered' });
    const forged = await mock.webhook(body, { 'x-sim-signature': signSimWebhook('guess', body) });
    assert.deepEqual([forged.status, forged.body.error.kind], [401, 'unauthenticated']);
    const signed = await mock.webhook(body, { 'x-sim-signature': signSimWebhook(SECRET, body) });
    assert.deepEqual([signed.status, signed.body], [200, { events: [{ providerId: again.body.providerId, status: 'delivered' }] }]);
    const malformed = await mock.webhook('nope', { 'x-sim-signature': signSimWebhook(SECRET, 'nope') });
    assert.deepEqual([malformed.status, malformed.body.error.kind], [400, 'bad_request']);

    assert.equal((await mock.status('sim-404')).status, 404);
    assert.equal((await mock.cancel('sim-404')).status, 404);
  } finally {
    await mock.close();
  }
});

test('signSimWebhook signs exact bytes only', () => {
  assert.equal(signSimWebhook('key', 'The quick brown fox jumps over the lazy dog'),
    'f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8', 'the well-known HMAC-SHA256 example value');
  assert.equal(signSimWebhook('key', Buffer.from('abc')), signSimWebhook('key', 'abc'));
  assert.throws(() => signSimWebhook('key', { a: 1 }), TypeError);
});
