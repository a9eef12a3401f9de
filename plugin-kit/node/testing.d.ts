// Types of faxbot-plugin-kit/testing.
/// <reference types="node" />
import type { IncomingHttpHeaders } from 'node:http';
import type { Manifest, Plugin, ServerOptions } from './index';

/** A plugin's answer as the server sees it: status, parsed JSON body (null when empty), headers. */
export interface Answer {
  status: number;
  body: any;
  headers: IncomingHttpHeaders;
}

export interface MockOptions extends ServerOptions {}

export interface SendOptions {
  /** Bytes of a PDF, an object sent verbatim as `document`, or null for none. */
  document?: Uint8Array | object | null;
  idempotencyKey?: string;
  jobId?: string;
  pages?: number | null;
}

/** A mock of the Faxbot server that serves a plugin on 127.0.0.1 and calls it as the server does. */
export declare class MockFaxbot {
  static start(plugin: Plugin, options?: MockOptions): Promise<MockFaxbot>;
  readonly url: string;
  readonly token: string | null;
  readonly pluginManifest: Manifest;
  request(
    method: string,
    path: string,
    options?: { body?: Buffer | string | object; headers?: Record<string, string>; token?: string | null },
  ): Promise<Answer>;
  manifest(): Promise<Answer>;
  health(): Promise<Answer>;
  send(to: string, options?: SendOptions): Promise<Answer>;
  status(providerId: string): Promise<Answer>;
  cancel(providerId: string): Promise<Answer>;
  webhook(body: Buffer | string | object, headers?: Record<string, string> | Array<[string, string]>, url?: string): Promise<Answer>;
  close(): Promise<void>;
}

/** Lower-case hex HMAC-SHA256 of `body` keyed with `secret`: the simulated provider's `x-sim-signature`. */
export declare function signSimWebhook(secret: string | Buffer, body: string | Uint8Array): string;

/** The one-page PDF `send` carries by default. */
export declare const SAMPLE_PDF: Buffer;
