'use strict';
// validateManifest must refuse exactly what `check_manifest` (contract/src/sidecar.rs) and the Rust
// deserialiser refuse. The first table is the Rust test's; the rest cover the shape checks and each limit
// from both sides.

const test = require('node:test');
const assert = require('node:assert/strict');
const { validateManifest, createServer, ManifestError, BUILTIN_IDS } = require('..');
const { goodManifest } = require('./helpers');

function fields(m) {
  return validateManifest(m).map(([f]) => f);
}

test('the table of check_manifest', () => {
  const table = [
    ['good', {}, null],
    ['protocol', { protocol: 2 }, 'protocol'],
    ['id upper', { id: 'Acme' }, 'id'],
    ['id builtin', { id: 'phaxio' }, 'id'],
    ['name number', { name: 'Fax +15551234567' }, 'name'],
    ['no status', { capabilities: ['send', 'cancel', 'webhook'] }, 'capabilities'],
    ['poll fast', { pollIntervalMs: 10 }, 'pollIntervalMs'],
    ['unverified', { webhook: { verification: 'none', maxBytes: 1 } }, 'webhook.verification'],
    ['webhook without section', { webhook: null }, 'webhook'],
    ['section without capability', { capabilities: ['send', 'status', 'cancel'] }, 'webhook'],
    ['huge callbacks', { webhook: { verification: 'HMAC', maxBytes: Number.MAX_SAFE_INTEGER } }, 'webhook.maxBytes'],
  ];
  for (const [name, edit, expected] of table) {
    const problems = validateManifest(goodManifest(edit));
    if (expected === null) assert.deepEqual(problems, [], name);
    else assert.ok(problems.some(([f]) => f === expected), `${name}: ${JSON.stringify(problems)}`);
  }
});

test('each limit, from both sides', () => {
  const table = [
    // [what, edit, the field refused or null]
    ['id of two', { id: 'ab' }, null],
    ['id of one', { id: 'a' }, 'id'],
    ['id of 63', { id: `a${'b'.repeat(62)}` }, null],
    ['id of 64', { id: `a${'b'.repeat(63)}` }, 'id'],
    ['id starting with a digit', { id: '1fax' }, 'id'],
    ['id with underscore', { id: 'acme_fax' }, 'id'],
    ['id with a dash at the end', { id: 'acme-' }, null],
    ['id not a string', { id: 7 }, 'id'],
    ['name of 200 bytes', { name: 'a'.repeat(200) }, null],
    ['name of 201 bytes', { name: 'a'.repeat(201) }, 'name'],
    // 101 two-byte letters: 101 characters, 202 bytes, which the server's `len()` refuses.
    ['name of 202 UTF-8 bytes', { name: 'é'.repeat(101) }, 'name'],
    ['blank name', { name: '   ' }, 'name'],
    ['empty version', { version: '' }, 'version'],
    ['version with a date', { version: '2024.10.15' }, null],
    ['version with a space', { version: '1 2' }, 'version'],
    ['version 1.2.3', { version: '1.2.3' }, null],
    ['name with four digits', { name: 'Fax 2000' }, null],
    ['poll 1000', { pollIntervalMs: 1000 }, null],
    ['poll 999', { pollIntervalMs: 999 }, 'pollIntervalMs'],
    ['poll 3600000', { pollIntervalMs: 3_600_000 }, null],
    ['poll 3600001', { pollIntervalMs: 3_600_001 }, 'pollIntervalMs'],
    ['poll not an integer', { pollIntervalMs: 1500.5 }, 'pollIntervalMs'],
    ['poll as a string', { pollIntervalMs: '5000' }, 'pollIntervalMs'],
    ['maxBytes 1', { webhook: { verification: 'HMAC', maxBytes: 1 } }, null],
    ['maxBytes 0', { webhook: { verification: 'HMAC', maxBytes: 0 } }, 'webhook.maxBytes'],
    ['maxBytes 32 MiB', { webhook: { verification: 'HMAC', maxBytes: 33_554_432 } }, null],
    ['maxBytes 32 MiB + 1', { webhook: { verification: 'HMAC', maxBytes: 33_554_433 } }, 'webhook.maxBytes'],
    ['maxBytes absent', { webhook: { verification: 'HMAC' } }, null],
    ['verification NONE', { webhook: { verification: ' NONE ' } }, 'webhook.verification'],
    ['verification empty', { webhook: { verification: '' } }, 'webhook.verification'],
    ['verification missing', { webhook: {} }, 'webhook.verification'],
    ['webhook not an object', { webhook: 'HMAC' }, 'webhook'],
    ['webhook unknown field', { webhook: { verification: 'HMAC', secret: 'x' } }, 'webhook.secret'],
    ['no webhook, no section', { capabilities: ['send', 'status'], webhook: undefined }, null],
    ['no webhook, null section', { capabilities: ['send', 'status'], webhook: null }, null],
    ['no send', { capabilities: ['status'], webhook: undefined }, 'capabilities'],
    ['unknown capability', { capabilities: ['send', 'status', 'webhook', 'receive'] }, 'capabilities'],
    ['capabilities not a list', { capabilities: 'send,status' }, 'capabilities'],
    ['hipaaCompliant as a string', { hipaaCompliant: 'yes' }, 'hipaaCompliant'],
    ['idempotent missing', { idempotent: undefined }, 'idempotent'],
    ['needsDocument missing', { needsDocument: undefined }, 'needsDocument'],
    ['protocol missing', { protocol: undefined }, 'protocol'],
    ['protocol as a string', { protocol: '1' }, 'protocol'],
    ['unknown field', { description: 'x' }, 'description'],
  ];
  for (const [what, edit, expected] of table) {
    const got = fields(goodManifest(edit));
    if (expected === null) assert.deepEqual(got, [], what);
    else assert.ok(got.includes(expected), `${what}: ${JSON.stringify(got)}`);
  }
});

test('every built-in id is refused', () => {
  assert.deepEqual([...BUILTIN_IDS].sort(), ['api_keys', 'external', 'local', 'phaxio', 's3', 'sinch', 'sip', 'test']);
  for (const id of BUILTIN_IDS) {
    assert.ok(validateManifest(goodManifest({ id })).some(([f, p]) => f === 'id' && p.includes('built-in')), id);
  }
});

test('a manifest that is not an object is one problem', () => {
  for (const m of [null, undefined, 'acme', 1, []]) assert.deepEqual(fields(m), [''], String(m));
});

test('createServer refuses an invalid manifest and lists every problem', () => {
  const plugin = { manifest: () => goodManifest({ protocol: 2, id: 'sip', pollIntervalMs: 1 }) };
  assert.throws(() => createServer(plugin), (err) => {
    assert.ok(err instanceof ManifestError);
    assert.deepEqual(err.problems.map(([f]) => f).sort(), ['id', 'pollIntervalMs', 'protocol']);
    for (const field of ['protocol', 'id', 'pollIntervalMs']) assert.match(err.message, new RegExp(field));
    return true;
  });
});

test('createServer refuses a manifest() that returns a promise', () => {
  const plugin = { manifest: async () => goodManifest() };
  assert.throws(() => createServer(plugin), /not a promise/);
});
