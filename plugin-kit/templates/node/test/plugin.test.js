'use strict';
// The plugin through the HTTP the Faxbot server uses (MockFaxbot). These pass on the simulated provider;
// keep them passing as the real provider calls replace it, using the provider's sandbox or a fake of it.

const test = require('node:test');
const assert = require('node:assert/strict');
const { validateManifest } = require('faxbot-plugin-kit');
const { MockFaxbot, signSimWebhook } = require('faxbot-plugin-kit/testing');
const { FaxPlugin } = require('../plugin');

const SECRET = 'test-webhook-secret';

async function withFaxbot(fn) {
  const faxbot = await MockFaxbot.start(new FaxPlugin({ webhookSecret: SECRET }));
  try {
    await fn(faxbot);
  } finally {
    await faxbot.close();
  }
}

test('the manifest is one the server accepts', async () => {
  const manifest = new FaxPlugin().manifest();
  assert.deepEqual(validateManifest(manifest), []);
  assert.equal(manifest.id, '@@ID@@');
  await withFaxbot(async (faxbot) => {
    assert.deepEqual((await faxbot.manifest()).body, manifest);
    assert.deepEqual((await faxbot.health()).body, { status: 'ok' });
  });
});

test('the conformance numbers take their branches', async () => {
  await withFaxbot(async (faxbot) => {
    const table = [
      // [to, status of the send, final state or error kind]
      ['+15555550100', 200, 'delivered'],
      ['+15555550101', 200, 'failed'],
      ['+15555550102', 422, 'rejected'],
      ['+15555550103', 503, 'unavailable'],
    ];
    for (const [to, sendStatus, outcome] of table) {
      const sent = await faxbot.send(to);
      assert.equal(sent.status, sendStatus, to);
      if (sendStatus === 200) {
        assert.equal(sent.body.status, 'in_progress', to);
        const state = await faxbot.status(sent.body.providerId);
        assert.equal(state.body.status, outcome, to);
      } else {
        assert.equal(sent.body.error.kind, outcome, to);
        assert.ok(!JSON.stringify(sent.body).includes('5555550'), `${to}: the error must not echo the number`);
      }
    }
    const busy = await faxbot.send('+15555550103');
    assert.ok(busy.body.error.retryAfterMs > 0, 'busy comes with a retry hint');
  });
});

test('a repeated send with the same idempotency key answers the first fax', async () => {
  await withFaxbot(async (faxbot) => {
    const first = await faxbot.send('+15555550100', { idempotencyKey: 'job-7' });
    const again = await faxbot.send('+15555550100', { idempotencyKey: 'job-7' });
    assert.equal(again.body.providerId, first.body.providerId);
    const other = await faxbot.send('+15555550100', { idempotencyKey: 'job-8' });
    assert.notEqual(other.body.providerId, first.body.providerId);
  });
});

test('cancel stops a fax in progress; unknown faxes are not found', async () => {
  await withFaxbot(async (faxbot) => {
    const sent = await faxbot.send('+15555550100');
    assert.equal((await faxbot.cancel(sent.body.providerId)).status, 204);
    assert.equal((await faxbot.status(sent.body.providerId)).body.status, 'failed');
    assert.equal((await faxbot.status('no-such-fax')).status, 404);
  });
});

test('callbacks: signed ones report the fax, forged ones are refused', async () => {
  await withFaxbot(async (faxbot) => {
    const sent = await faxbot.send('+15555550100');
    const body = JSON.stringify({ providerId: sent.body.providerId, status: 'delivered' });
    const forged = await faxbot.webhook(body, { 'x-sim-signature': signSimWebhook('guessed', body) });
    assert.deepEqual([forged.status, forged.body.error.kind], [401, 'unauthenticated']);
    const unsigned = await faxbot.webhook(body, {});
    assert.equal(unsigned.status, 401);
    const signed = await faxbot.webhook(body, { 'x-sim-signature': signSimWebhook(SECRET, body) });
    assert.equal(signed.status, 200);
    assert.deepEqual(signed.body.events, [{ providerId: sent.body.providerId, status: 'delivered' }]);
  });
});
