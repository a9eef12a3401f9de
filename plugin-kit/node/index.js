'use strict';
// faxbot-plugin-kit: the Faxbot sidecar plugin protocol v1 (docs/plugin-protocol.yaml) for Node plugins.
// A plugin extends `Plugin`, writes its provider calls, and hands itself to `serve`.

const { Kind, PluginError, isPluginError, statusOfKind } = require('./lib/errors');
const { Plugin } = require('./lib/plugin');
const {
  PROTOCOL_VERSION, BUILTIN_IDS, WEBHOOK_MAX_BYTES, DEFAULT_WEBHOOK_BYTES, ManifestError, validateManifest,
} = require('./lib/manifest');
const { maskNumbers, mayHoldNumber, LOG_MIN_DIGITS } = require('./lib/phi');
const {
  DEFAULT_MAX_BODY_BYTES, PROTOCOL_HEADER, createServer, serve, parseListen, serverUrl,
} = require('./lib/server');
const { SimulatedProvider } = require('./lib/simulated');

module.exports = {
  PROTOCOL_VERSION,
  PROTOCOL_HEADER,
  BUILTIN_IDS,
  WEBHOOK_MAX_BYTES,
  DEFAULT_WEBHOOK_BYTES,
  DEFAULT_MAX_BODY_BYTES,
  LOG_MIN_DIGITS,
  Kind,
  PluginError,
  isPluginError,
  statusOfKind,
  Plugin,
  ManifestError,
  validateManifest,
  maskNumbers,
  mayHoldNumber,
  createServer,
  serve,
  parseListen,
  serverUrl,
  SimulatedProvider,
};
