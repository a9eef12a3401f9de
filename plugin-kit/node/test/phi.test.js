'use strict';
// The number mask must agree with contract/src/phi.rs on every string: these are its tests' tables.

const test = require('node:test');
const assert = require('node:assert/strict');
const { maskNumbers, mayHoldNumber } = require('..');

const LOG = 5;
const STATUS = 8;
const GUARD = 8;

test('numbers keep only their last four digits however they are written', () => {
  for (const written of ['+15551234567', '+1 (555) 123-4567', '1.555.123.4567', '(555) 123 4567', '5551234567']) {
    assert.equal(maskNumbers(`call ${written} now`, LOG), 'call …4567 now', written);
    assert.equal(maskNumbers(`"${written}"`, STATUS), '"…4567"', written);
  }
  assert.equal(maskNumbers('busy at 555-1234', LOG), 'busy at …1234');
  assert.equal(maskNumbers('12345', LOG), '…2345');
  assert.equal(maskNumbers('12345'), '…2345', 'five digits is the default');
});

test('short numbers and readable limits stay', () => {
  const table = [
    ['revision 42, port 8080, 1.5%', LOG, 'revision 42, port 8080, 1.5%'],
    ['attempt 3 of 5 (code 1234)', LOG, 'attempt 3 of 5 (code 1234)'],
    ['must be at most 3600000', STATUS, 'must be at most 3600000'],
    ['must be at most 3600000', LOG, 'must be at most …0000'],
    ['no digits (here) + there', LOG, 'no digits (here) + there'],
    ['GPL Ghostscript 10.00.0: error', LOG, 'GPL Ghostscript 10.00.0: error'],
    ['from 127.0.0.1 in 1.25 s', LOG, 'from 127.0.0.1 in 1.25 s'],
    ['', LOG, ''],
    ['ünï 12 ☎ 3', LOG, 'ünï 12 ☎ 3'],
    ['emoji 😀 +1 555 555 0100 😀', LOG, 'emoji 😀 …0100 😀'],
  ];
  for (const [text, min, expected] of table) assert.equal(maskNumbers(text, min), expected, text);
});

test('may_hold_number answers for the usual lines', () => {
  assert.equal(mayHoldNumber('sending to +1 (555) 123-4567', GUARD), true);
  assert.equal(mayHoldNumber('job 3 of 5 sent in 1.25 s, 2 pages', GUARD), false);
  assert.equal(mayHoldNumber('', 1), false);
  // Separators are counted through, so this is a "maybe" that masking then leaves alone.
  assert.equal(mayHoldNumber('10.00.0 1234', GUARD), true);
  assert.equal(mayHoldNumber('0.1.0'), false);
  assert.equal(mayHoldNumber('10.20.300'), true, 'a long version counts as a possible number');
});

test('mayHoldNumber never says "nothing here" for text that masking would change', () => {
  // The proptest of phi.rs, over a seeded generator so that a failure reproduces.
  const alphabet = [...'0123456789 .()+-az_é☎"'];
  let seed = 42;
  const next = () => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed;
  };
  for (let n = 0; n < 5000; n += 1) {
    const length = next() % 41;
    let text = '';
    for (let i = 0; i < length; i += 1) text += alphabet[next() % alphabet.length];
    const min = 1 + (next() % 9);
    if (!mayHoldNumber(text, min)) assert.equal(maskNumbers(text, min), text, JSON.stringify([text, min]));
  }
});
