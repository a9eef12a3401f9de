'use strict';
// The entry point as the container runs it: configured from the environment, prints its address, needs the
// token, and exits cleanly on SIGTERM.

const test = require('node:test');
const assert = require('node:assert/strict');
const http = require('node:http');
const path = require('node:path');
const { spawn } = require('node:child_process');

function get(url, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }));
    }).on('error', reject);
  });
}

test('index.js serves from the environment and stops on SIGTERM', async (t) => {
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'index.js')], {
    env: { ...process.env, FAXBOT_PLUGIN_LISTEN: '127.0.0.1:0', FAXBOT_PLUGIN_TOKEN: 'tok', FAXBOT_PLUGIN_WEBHOOK_SECRET: 's' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.kill('SIGKILL'));
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const url = await new Promise((resolve, reject) => {
    let stdout = '';
    child.stdout.on('data', (d) => {
      stdout += d;
      const m = /^listening on (http:\/\/127\.0\.0\.1:(\d+))\n/.exec(stdout);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`exited with ${code} before listening: ${stderr}`)));
  });
  assert.notEqual(new URL(url).port, '0', 'the real port is printed');

  assert.deepEqual(await get(`${url}/v1/health`), { status: 200, body: { status: 'ok' } });
  assert.equal((await get(`${url}/v1/manifest`)).status, 401);
  assert.equal((await get(`${url}/v1/manifest`, { authorization: 'Bearer tok' })).body.id, '@@ID@@');

  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 0, signal: null });
  assert.equal(stderr, '', 'nothing to warn about with a token and a secret');
});
