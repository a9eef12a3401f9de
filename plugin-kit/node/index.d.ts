// Types of faxbot-plugin-kit: the Faxbot sidecar plugin protocol v1 (docs/plugin-protocol.yaml).
/// <reference types="node" />
import type { Server } from 'node:http';

/** What a plugin can do; `send` and `status` are required. */
export type Capability = 'send' | 'status' | 'cancel' | 'webhook';

/** `GET /v1/manifest`: who the plugin is and what it can do. */
export interface Manifest {
  /** Must be 1. */
  protocol: 1;
  /** 2–63 lower-case letters, digits or `-`, starting with a letter; not a built-in plugin's id. */
  id: string;
  /** 1–200 characters (UTF-8 bytes), no number-like run of five digits or more. */
  name: string;
  /** As `name`, e.g. `0.1.0`. */
  version: string;
  /** The provider signs a BAA and the plugin keeps PHI out of its logs. */
  hipaaCompliant: boolean;
  capabilities: Capability[];
  /** A repeated `send` with the same idempotency key answers the first fax instead of sending again. */
  idempotent: boolean;
  /** Whether `send` receives the document (otherwise it gets `document: null`). */
  needsDocument: boolean;
  /** How often the server polls `status` for a fax in progress: 1000–3600000 ms. */
  pollIntervalMs: number;
  /** Required with the `webhook` capability, refused without it. */
  webhook?: WebhookSpec | null;
}

/** How the plugin authenticates its provider's callbacks. */
export interface WebhookSpec {
  /** The scheme in words (e.g. "HMAC-SHA256 of the body in X-Acme-Signature"); never empty or `none`. */
  verification: string;
  /** Largest callback body, 1–33554432 bytes; 1048576 when absent. */
  maxBytes?: number;
}

/** The document of a `send` (always a PDF in protocol 1). */
export interface SendDocument {
  contentType: 'application/pdf';
  /** The bytes, standard padded base64, as on the wire. */
  base64: string;
  /** Added by the kit: the decoded bytes (the kit has checked the base64). */
  bytes: Buffer;
}

/** `POST /v1/send`. `to` and `document` are PHI: never log them or put them in an error message. */
export interface SendRequest {
  /** The server's job id (safe to log). */
  jobId: string;
  /** Destination in E.164 (PHI). */
  to: string;
  /** The same for every attempt of one job. */
  idempotencyKey: string;
  pages: number | null;
  document: SendDocument | null;
}

export type FaxState = 'queued' | 'in_progress' | 'delivered' | 'failed';

/** The answer to `send` and `status`, and each webhook event. */
export interface FaxAnswer {
  /** The provider's id of the fax: 1–200 characters, no control characters (it goes into URLs). */
  providerId: string;
  status: FaxState;
  /** Why it failed, for `failed` (the kit masks digit runs). */
  error?: string | null;
  /** When to poll first, in ms from now. */
  checkAfterMs?: number | null;
}

/** `POST /v1/webhook`: a provider callback exactly as the server received it. */
export interface WebhookRequest {
  /** The full URL the provider called. */
  url: string;
  /** Header names (lower-case) and values, in order; a name may repeat. */
  headers: Array<[string, string]>;
  /** The raw body, base64, as on the wire. */
  bodyBase64: string;
  /** Added by the kit: the raw body bytes, to verify a signature over. */
  body: Buffer;
}

/** The answer to an authentic callback: the status changes it reports (none is fine). */
export interface WebhookAnswer {
  events: FaxAnswer[];
}

/** `GET /v1/health`. */
export type Health = { status: 'ok' } | { status: 'failing'; message?: string | null };

export type ErrorKind =
  | 'bad_request'
  | 'unauthenticated'
  | 'credentials'
  | 'rejected'
  | 'not_found'
  | 'rate_limited'
  | 'unavailable'
  | 'unsupported';

export declare const Kind: Readonly<{
  BAD_REQUEST: 'bad_request';
  UNAUTHENTICATED: 'unauthenticated';
  CREDENTIALS: 'credentials';
  REJECTED: 'rejected';
  NOT_FOUND: 'not_found';
  RATE_LIMITED: 'rate_limited';
  UNAVAILABLE: 'unavailable';
  UNSUPPORTED: 'unsupported';
}>;

/**
 * The error a plugin throws to choose the server's answer: the kind decides the HTTP status and what the
 * server does (`rate_limited` and `unavailable` are retried). The message must hold no PHI.
 */
export declare class PluginError extends Error {
  constructor(kind: ErrorKind, message: string, retryAfterMs?: number | null);
  readonly kind: ErrorKind;
  /** Whole milliseconds, or null. */
  readonly retryAfterMs: number | null;
  /** The HTTP status of the kind. */
  readonly status: number;
}

export declare function isPluginError(e: unknown): e is PluginError;
export declare function statusOfKind(kind: ErrorKind): number;

/** The base class of a plugin; override `manifest`, `send` and `status`, and what the manifest declares. */
export declare class Plugin {
  manifest(): Manifest;
  health(): Health | Promise<Health>;
  send(req: SendRequest): Promise<FaxAnswer> | FaxAnswer;
  status(providerId: string): Promise<FaxAnswer> | FaxAnswer;
  /** Default: throws `unsupported`. */
  cancel(providerId: string): Promise<void> | void;
  /** Default: throws `unsupported`. */
  webhook(req: WebhookRequest): Promise<WebhookAnswer> | WebhookAnswer;
}

export interface ServerOptions {
  /** The plugin token (`FAXBOT_PLUGIN_TOKEN`); when set (non-empty), every route but health requires it. */
  token?: string | null;
  /** Largest request body in bytes (default 48 MiB). */
  maxBodyBytes?: number;
  /** Time allowed for a request's headers (default 10 s). */
  headersTimeoutMs?: number;
  /** Time allowed for a whole request (default 60 s). */
  requestTimeoutMs?: number;
  /** Where the one line about an unexpected exception goes (masked); default stderr, `null` for nowhere. */
  log?: ((line: string) => void) | null;
}

export interface ServeOptions extends ServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 8090; 0 picks a free port. */
  port?: number;
}

/** Thrown by createServer for a manifest the server would refuse. */
export declare class ManifestError extends Error {
  readonly problems: Array<[string, string]>;
}

/** Everything wrong with a manifest as [field, problem]; empty when the server would use it. */
export declare function validateManifest(manifest: unknown): Array<[string, string]>;

/** The protocol server for a plugin; the caller listens. Throws ManifestError for an invalid manifest. */
export declare function createServer(plugin: Plugin, options?: ServerOptions): Server;
/** createServer, then listen; resolves once listening. */
export declare function serve(plugin: Plugin, options?: ServeOptions): Promise<Server>;
/** `HOST:PORT` or `[V6]:PORT` as its parts. */
export declare function parseListen(text: string): { host: string; port: number };
/** A listening server's base URL, e.g. `http://127.0.0.1:8090`. */
export declare function serverUrl(server: Server): string;

/** Runs of at least `minDigits` (default 5) digits, joined by spaces . - ( ) +, become `…` and the last four. */
export declare function maskNumbers(text: string, minDigits?: number): string;
export declare function mayHoldNumber(text: string, minDigits?: number): boolean;

/**
 * An in-memory provider following the conformance numbers (last four digits of `to`): 0100 delivered,
 * 0101 fails in transmission, 0102 rejected at send, 0103 busy at send; anything else delivered.
 */
export declare class SimulatedProvider {
  constructor(options?: { webhookSecret?: string | Buffer | null; maxFaxes?: number });
  send(req: SendRequest): Promise<FaxAnswer>;
  status(providerId: string): Promise<FaxAnswer>;
  cancel(providerId: string): Promise<void>;
  /** Authentic only with `x-sim-signature`: lower-case hex HMAC-SHA256 of the body keyed with the secret. */
  webhook(req: WebhookRequest | Omit<WebhookRequest, 'body'>): Promise<WebhookAnswer>;
}

export declare const PROTOCOL_VERSION: 1;
export declare const PROTOCOL_HEADER: 'faxbot-plugin-protocol';
export declare const BUILTIN_IDS: readonly string[];
export declare const WEBHOOK_MAX_BYTES: number;
export declare const DEFAULT_WEBHOOK_BYTES: number;
export declare const DEFAULT_MAX_BODY_BYTES: number;
export declare const LOG_MIN_DIGITS: number;
