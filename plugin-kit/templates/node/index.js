'use strict';
// Starts @@NAME@@ from its environment:
//   FAXBOT_PLUGIN_LISTEN          HOST:PORT to listen on (default 127.0.0.1:8090; port 0 picks a free one)
//   FAXBOT_PLUGIN_TOKEN           the plugin token; every route but /v1/health then requires it
//   FAXBOT_PLUGIN_WEBHOOK_SECRET  the key provider callbacks are verified with
// Prints `listening on http://HOST:PORT` once bound (the real port), and stops on SIGTERM or SIGINT after
// the requests in flight are answered.

const { serve, parseListen, serverUrl } = require('faxbot-plugin-kit');
const { FaxPlugin } = require('./plugin');

// Below Kubernetes' default 30 s termination grace, so the plugin exits on its own before it is killed.
const SHUTDOWN_GRACE_MS = 20_000;

async function main(env) {
  let listen;
  try {
    listen = parseListen(env.FAXBOT_PLUGIN_LISTEN || '127.0.0.1:8090');
  } catch (err) {
    throw new Error(`FAXBOT_PLUGIN_LISTEN: ${err.message}`);
  }
  const token = env.FAXBOT_PLUGIN_TOKEN || null;
  const webhookSecret = env.FAXBOT_PLUGIN_WEBHOOK_SECRET || null;
  if (token === null) {
    console.error('@@ID@@: FAXBOT_PLUGIN_TOKEN is not set: anything that reaches the port may send faxes');
  }
  if (webhookSecret === null) {
    console.error('@@ID@@: FAXBOT_PLUGIN_WEBHOOK_SECRET is not set: every provider callback will be refused');
  }
  const server = await serve(new FaxPlugin({ webhookSecret }), { ...listen, token });
  process.stdout.write(`listening on ${serverUrl(server)}\n`);

  // As PID 1 in a container, Node gets no default signal handling: without these handlers SIGTERM would be
  // ignored until the kubelet kills the container.
  const stop = () => {
    // Stop accepting and let requests in flight finish: a send cut short is a fax the server cannot know
    // the fate of.
    server.close(() => process.exit(0));
    if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
    setTimeout(() => {
      console.error('@@ID@@: requests still running after the shutdown grace; exiting');
      process.exit(1);
    }, SHUTDOWN_GRACE_MS).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main(process.env).catch((err) => {
  // Start-up errors (a bad address, a port in use, an invalid manifest) carry no PHI.
  console.error(`@@ID@@: ${err.message}`);
  process.exit(1);
});
