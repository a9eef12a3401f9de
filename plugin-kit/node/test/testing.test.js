'use strict';
// MockFaxbot calls a plugin the way the server does; these check the mock itself.

const test = require('node:test');
const assert = require('node:assert/strict');
const { MockFaxbot, SAMPLE_PDF } = require('../testing');
const { goodManifest, ScriptedPlugin } = require('./helpers');

test('the mock presents a random token by default, which the plugin then requires', async () => {
  const a = await MockFaxbot.start(new ScriptedPlugin());
  const b = await MockFaxbot.start(new ScriptedPlugin());
  try {
    assert.ok(a.token && a.token.length >= 24);
    assert.notEqual(a.token, b.token);
    assert.equal((await a.manifest()).status, 200);
    assert.equal((await a.request('GET', '/v1/manifest', { token: null })).status, 401);
    assert.equal((await a.request('GET', '/v1/manifest', { token: b.token })).status, 401);
    assert.match(a.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(a.pluginManifest, goodManifest());
  } finally {
    await a.close();
    await b.close();
  }
});

test('send carries a PDF when the manifest needs one, nothing otherwise, and what the test says', async () => {
  const needs = new ScriptedPlugin();
  const mock = await MockFaxbot.start(needs);
  try {
    await mock.send('+15555550100');
    await mock.send('+15555550100', { document: null, jobId: 'j-2', idempotencyKey: 'k-2', pages: 3 });
    await mock.send('+15555550100', { document: Buffer.from('%PDF-1.7 mine') });
    const [first, second, third] = needs.calls.filter(([m]) => m === 'send').map(([, r]) => r);
    assert.deepEqual(first.document.bytes, SAMPLE_PDF);
    assert.equal(first.idempotencyKey, first.jobId, 'the key defaults to the job id');
    assert.match(first.jobId, /^[0-9a-f]{16}$/);
    assert.deepEqual([second.document, second.jobId, second.idempotencyKey, second.pages], [null, 'j-2', 'k-2', 3]);
    assert.equal(third.document.bytes.toString(), '%PDF-1.7 mine');
  } finally {
    await mock.close();
  }
  const noDocument = new ScriptedPlugin({ manifest: goodManifest({ needsDocument: false }) });
  const other = await MockFaxbot.start(noDocument);
  try {
    await other.send('+15555550100');
    assert.equal(noDocument.calls.find(([m]) => m === 'send')[1].document, null);
  } finally {
    await other.close();
  }
});

test('webhook forwards body, headers and url as the server does', async () => {
  const plugin = new ScriptedPlugin();
  const mock = await MockFaxbot.start(plugin);
  try {
    await mock.webhook({ a: 1 }, [['X-One', '1'], ['x-one', '2']]);
    await mock.webhook(Buffer.from([0, 255]), { 'Content-Type': 'application/octet-stream' }, 'https://h/webhooks/x');
    const [first, second] = plugin.calls.filter(([m]) => m === 'webhook').map(([, r]) => r);
    assert.equal(first.body.toString(), '{"a":1}');
    assert.deepEqual(first.headers, [['x-one', '1'], ['x-one', '2']], 'repeated headers keep their order');
    assert.equal(first.url, 'https://faxbot.example/webhooks/acme-fax');
    assert.deepEqual([...second.body], [0, 255]);
    assert.deepEqual(second.headers, [['content-type', 'application/octet-stream']]);
    assert.equal(second.url, 'https://h/webhooks/x');
  } finally {
    await mock.close();
  }
});

test('the mock refuses to start a plugin the server would refuse', async () => {
  await assert.rejects(MockFaxbot.start(new ScriptedPlugin({ manifest: goodManifest({ protocol: 2 }) })), /protocol/);
});

test('close ends the server', async () => {
  const mock = await MockFaxbot.start(new ScriptedPlugin());
  await mock.close();
  await assert.rejects(mock.health(), /ECONNREFUSED/);
});
