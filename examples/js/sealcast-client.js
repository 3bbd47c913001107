/**
 * sealcast JavaScript client — browsers and Node 20+, WebCrypto only, zero dependencies.
 *
 * ```js
 * import { SealcastClient } from './sealcast-client.js';
 * const client = new SealcastClient({ url: 'wss://example.com/ws', token: 'alice' });
 * client.on('chat', (data, meta) => console.log(data, meta.encrypted));
 * const info = await client.connect();   // the server's `connected` data
 * client.join('chat-lobby');
 * client.send('chat', { room: 'chat-lobby', text: 'hi' });
 * ```
 *
 * Layout of this file: base64/UTF-8 utilities, the v1 crypto helpers, the typed errors, the
 * reconnect backoff, the protocol profiles (`none`, `v1`; `v2` slots in beside them), and the
 * client itself.
 *
 * @module sealcast-client
 */

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/** HKDF `info` of the v1 profile (the reference implementation's label; must match exactly). */
export const V1_HKDF_INFO = 'ignis-ecdh-p256-aes-256-gcm-v1';

/** Close codes the server uses. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  SERVER_SHUTDOWN: 1001,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  AUTH_TIMEOUT: 4001,
  HEARTBEAT_TIMEOUT: 4002,
  AUTHENTICATION_FAILED: 4003,
  ENCRYPTION_REQUIRED: 4004,
});

/** Lifecycle events emitted by the client itself; server frames with these names are not delivered. */
const LIFECYCLE_EVENTS = new Set(['open', 'close', 'reconnecting', 'error', 'raw', '*']);
/** Events the client sends through dedicated methods, never through `send()`. */
const SYSTEM_EVENTS = new Set(['authenticate', 'join', 'leave', 'heartbeat', 'encrypted', 'connected']);

const V1_IV_BYTES = 12;
const V1_TAG_BYTES = 16;
const V1_SALT_BYTES = 32;
const P256_RAW_PUBLIC_KEY_BYTES = 65;

const encoder = new TextEncoder();
const strictDecoder = new TextDecoder('utf-8', { fatal: true });

function subtle() {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new SealcastError('WebCrypto (crypto.subtle) is not available in this environment');
  return s;
}

// ---------------------------------------------------------------------------------------------
// Base64 (standard alphabet, padded) and UTF-8
// ---------------------------------------------------------------------------------------------

/**
 * Standard base64 of bytes.
 * @param {Uint8Array} bytes
 * @returns {string}
 */
export function bytesToB64(bytes) {
  let bin = '';
  const CHUNK = 0x8000; // keeps String.fromCharCode's argument list small for large records
  for (let i = 0; i < bytes.length; i += CHUNK) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + CHUNK));
  }
  return btoa(bin);
}

/**
 * Decode standard base64; throws `TypeError` on malformed input.
 * @param {string} b64
 * @returns {Uint8Array}
 */
export function b64ToBytes(b64) {
  if (typeof b64 !== 'string') throw new TypeError('base64 value must be a string');
  let bin;
  try {
    bin = atob(b64);
  } catch {
    throw new TypeError('malformed base64');
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function b64url(bytes) {
  return bytesToB64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function toBytes(value) {
  if (value == null) return undefined;
  if (typeof value === 'string') return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new TypeError('expected a string or bytes');
}

// ---------------------------------------------------------------------------------------------
// v1 crypto: P-256 ECDH -> HKDF-SHA256(salt, V1_HKDF_INFO) -> AES-256-GCM, 12-byte IV, tag appended
// ---------------------------------------------------------------------------------------------

/**
 * Generate an ephemeral P-256 ECDH key pair. The private key is not extractable.
 * @returns {Promise<CryptoKeyPair>}
 */
export function generateKeyPair() {
  return subtle().generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
}

/**
 * Export an ECDH public key as base64 of its raw uncompressed 65-byte encoding.
 * @param {CryptoKey} publicKey
 * @returns {Promise<string>}
 */
export async function exportPublicKeyB64(publicKey) {
  return bytesToB64(new Uint8Array(await subtle().exportKey('raw', publicKey)));
}

function rawPublicKey(publicKeyB64) {
  let raw;
  try {
    raw = b64ToBytes(publicKeyB64);
  } catch {
    throw new SealcastError('public key is not valid base64');
  }
  // SECURITY: accept only the uncompressed encoding; WebCrypto then checks the point is on the curve.
  if (raw.length !== P256_RAW_PUBLIC_KEY_BYTES || raw[0] !== 0x04) {
    throw new SealcastError('public key must be a raw uncompressed 65-byte P-256 point');
  }
  return raw;
}

/**
 * Import a peer's P-256 public key (base64 raw, 65 bytes, uncompressed, on the curve).
 * @param {string} publicKeyB64
 * @returns {Promise<CryptoKey>}
 */
export async function importPublicKeyB64(publicKeyB64) {
  return subtle().importKey('raw', rawPublicKey(publicKeyB64), { name: 'ECDH', namedCurve: 'P-256' }, true, []);
}

/**
 * Import a raw 32-byte P-256 private scalar (for test vectors and interop tests) via JWK.
 * @param {Uint8Array} scalar the 32-byte private key
 * @param {string} publicKeyB64 its public key, base64 raw 65 bytes (JWK needs x and y)
 * @returns {Promise<CryptoKey>} a non-extractable ECDH private key
 */
export async function importPrivateKey(scalar, publicKeyB64) {
  const raw = rawPublicKey(publicKeyB64);
  if (!(scalar instanceof Uint8Array) || scalar.length !== 32) throw new TypeError('private scalar must be 32 bytes');
  const jwk = {
    kty: 'EC', crv: 'P-256', ext: false, key_ops: ['deriveBits'],
    d: b64url(scalar), x: b64url(raw.subarray(1, 33)), y: b64url(raw.subarray(33, 65)),
  };
  return subtle().importKey('jwk', jwk, { name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
}

/**
 * Derive the v1 AES-256-GCM key: ECDH(privateKey, peer) -> HKDF-SHA256(salt, V1_HKDF_INFO).
 * Works on either side: the client passes the server's public key, the server the client's.
 * @param {CryptoKey} privateKey own ECDH private key
 * @param {string} peerPublicKeyB64 the other side's public key (base64 raw 65 bytes)
 * @param {string} saltB64 base64 of the 32-byte salt the server chose
 * @returns {Promise<CryptoKey>} non-extractable AES-GCM key for encrypt/decrypt
 */
export async function deriveV1Key(privateKey, peerPublicKeyB64, saltB64) {
  let salt;
  try {
    salt = b64ToBytes(saltB64);
  } catch {
    throw new SealcastError('salt is not valid base64');
  }
  if (salt.length !== V1_SALT_BYTES) throw new SealcastError(`salt must be ${V1_SALT_BYTES} bytes`);
  const s = subtle();
  const peer = await importPublicKeyB64(peerPublicKeyB64);
  const shared = await s.deriveBits({ name: 'ECDH', public: peer }, privateKey, 256);
  const ikm = await s.importKey('raw', shared, 'HKDF', false, ['deriveKey']);
  return s.deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt, info: encoder.encode(V1_HKDF_INFO) },
    ikm,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

function gcmParams(iv, aad) {
  const params = { name: 'AES-GCM', iv, tagLength: V1_TAG_BYTES * 8 };
  const ad = toBytes(aad);
  if (ad) params.additionalData = ad;
  return params;
}

/**
 * Seal a v1 record with a fresh random 12-byte IV.
 * @param {CryptoKey} key from {@link deriveV1Key}
 * @param {string | Uint8Array} plaintext strings are UTF-8 encoded
 * @param {string | Uint8Array | null} [aad] optional additional authenticated data
 * @returns {Promise<{iv: string, ct: string}>} base64 IV and ciphertext with the 16-byte tag appended
 */
export async function sealV1(key, plaintext, aad) {
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(V1_IV_BYTES));
  const ct = new Uint8Array(await subtle().encrypt(gcmParams(iv, aad), key, toBytes(plaintext) ?? new Uint8Array()));
  return { iv: bytesToB64(iv), ct: bytesToB64(ct) };
}

/**
 * Open a v1 record to bytes. Any failure (bad base64, wrong IV length, short or tampered
 * ciphertext, wrong key or AAD) rejects with {@link DecryptError}.
 * @param {CryptoKey} key
 * @param {string} ivB64
 * @param {string} ctB64
 * @param {string | Uint8Array | null} [aad]
 * @returns {Promise<Uint8Array>}
 */
export async function openV1Bytes(key, ivB64, ctB64, aad) {
  let iv, ct;
  try {
    iv = b64ToBytes(ivB64);
    ct = b64ToBytes(ctB64);
  } catch {
    throw new DecryptError('encrypted record is not valid base64');
  }
  if (iv.length !== V1_IV_BYTES) throw new DecryptError(`IV must be ${V1_IV_BYTES} bytes`);
  if (ct.length < V1_TAG_BYTES) throw new DecryptError('ciphertext is shorter than the tag');
  try {
    return new Uint8Array(await subtle().decrypt(gcmParams(iv, aad), key, ct));
  } catch (cause) {
    // SECURITY: one opaque error for every authentication failure.
    throw new DecryptError('encrypted record failed authentication', { cause });
  }
}

/**
 * Open a v1 record to a string (UTF-8, strictly decoded). Rejects with {@link DecryptError}.
 * @param {CryptoKey} key
 * @param {string} ivB64
 * @param {string} ctB64
 * @param {string | Uint8Array | null} [aad]
 * @returns {Promise<string>}
 */
export async function openV1(key, ivB64, ctB64, aad) {
  const bytes = await openV1Bytes(key, ivB64, ctB64, aad);
  try {
    return strictDecoder.decode(bytes);
  } catch (cause) {
    throw new DecryptError('decrypted record is not valid UTF-8', { cause });
  }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/** Base class of every error this client produces. `code` is the close code when there is one. */
export class SealcastError extends Error {
  /**
   * @param {string} message
   * @param {{code?: number, reason?: string, cause?: unknown, data?: unknown}} [opts]
   */
  constructor(message, opts = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = new.target.name;
    /** @type {number | undefined} */ this.code = opts.code;
    /** @type {string | undefined} */ this.reason = opts.reason;
    if (opts.data !== undefined) this.data = opts.data;
  }
}
/** The connection closed with a code that has no more specific class. */
export class ConnectionClosedError extends SealcastError {}
/** 4001: the server did not get (or finish) authentication in time. */
export class AuthTimeoutError extends SealcastError {}
/** 4002: the server saw no traffic within its heartbeat timeout. */
export class HeartbeatTimeoutError extends SealcastError {}
/** 4003: the server rejected the credentials (no automatic reconnect). */
export class AuthenticationError extends SealcastError {}
/** 4004: the server requires encryption and the handshake did not happen (no automatic reconnect). */
export class EncryptionRequiredError extends SealcastError {}
/** 1001: the server is shutting down. */
export class ServerShutdownError extends SealcastError {}
/** 1008: the server closed for a policy violation (e.g. too many requests). */
export class PolicyViolationError extends SealcastError {}
/** 1009: a frame exceeded the server's size limit. */
export class MessageTooBigError extends SealcastError {}
/** An `encrypted` frame failed to decrypt; the message was dropped, never delivered. */
export class DecryptError extends SealcastError {}
/** The server sent `{event: "error", data: {message}}`; `message` is the server's exact string. */
export class ServerError extends SealcastError {}
/** The server broke the protocol (e.g. a plaintext frame on an encrypted connection). */
export class ProtocolError extends SealcastError {}

const CLOSE_ERRORS = new Map([
  [CloseCode.SERVER_SHUTDOWN, [ServerShutdownError, 'Server shutting down']],
  [CloseCode.POLICY_VIOLATION, [PolicyViolationError, 'Policy violation']],
  [CloseCode.MESSAGE_TOO_BIG, [MessageTooBigError, 'Message too big']],
  [CloseCode.AUTH_TIMEOUT, [AuthTimeoutError, 'Authentication timeout']],
  [CloseCode.HEARTBEAT_TIMEOUT, [HeartbeatTimeoutError, 'Heartbeat timeout']],
  [CloseCode.AUTHENTICATION_FAILED, [AuthenticationError, 'Authentication failed']],
  [CloseCode.ENCRYPTION_REQUIRED, [EncryptionRequiredError, 'Encryption required']],
]);

/**
 * The typed error for a close code, or `null` for a normal closure (1000).
 * Unknown codes give a {@link ConnectionClosedError}.
 * @param {number} code
 * @param {string} [reason]
 * @returns {SealcastError | null}
 */
export function errorForClose(code, reason = '') {
  if (code === CloseCode.NORMAL) return null;
  const [Cls, fallback] = CLOSE_ERRORS.get(code) ?? [ConnectionClosedError, `Connection closed (code ${code})`];
  return new Cls(reason || fallback, { code, reason });
}

/** Close codes after which reconnecting cannot help. */
const TERMINAL_CLOSE_CODES = new Set([CloseCode.AUTHENTICATION_FAILED, CloseCode.ENCRYPTION_REQUIRED]);

// ---------------------------------------------------------------------------------------------
// Reconnect backoff
// ---------------------------------------------------------------------------------------------

/** Default reconnect policy. Delays are in milliseconds. */
export const DEFAULT_RECONNECT = Object.freeze({
  enabled: true, minDelay: 500, maxDelay: 30_000, factor: 2, jitter: 1, maxAttempts: Infinity,
});

/**
 * Delay before reconnect attempt `attempt` (1-based): exponential backoff capped at `maxDelay`,
 * with jitter. `jitter` 1 (or `true`) is "full jitter" — uniform in [0, base]; 0 (or `false`)
 * is no jitter; values in between shrink the base by up to that fraction.
 * @param {number} attempt
 * @param {Partial<typeof DEFAULT_RECONNECT>} [policy]
 * @param {() => number} [random] uniform in [0, 1); injectable for tests
 * @returns {number}
 */
export function backoffDelay(attempt, policy = {}, random = Math.random) {
  const { minDelay, maxDelay, factor, jitter } = { ...DEFAULT_RECONNECT, ...policy };
  const n = Math.max(1, Math.floor(attempt));
  const base = Math.min(maxDelay, minDelay * factor ** (n - 1));
  const j = jitter === true ? 1 : jitter === false ? 0 : Math.min(1, Math.max(0, Number(jitter) || 0));
  return Math.round(base * (1 - j * random()));
}

// ---------------------------------------------------------------------------------------------
// Protocol profiles
//
// A profile owns the encryption handshake and the record layer:
//   begin()                      -> { auth: extra fields for the `authenticate` data,
//                                     finish(connectedData) -> Promise<Codec> }
//   Codec.encrypted              -> boolean
//   Codec.decode(frame)          -> Promise<{event, data, encrypted}>  (throws DecryptError/ProtocolError)
//   Codec.encode(message)        -> string (what goes on the wire)
// v1 adds the client key to `authenticate` and reads the server key from `connected`; inbound
// frames are sealed, outbound stay plaintext. A v2 profile (own pre-auth `handshake` event,
// sealed outbound records) adds a `begin(io)` exchange and registers itself in PROFILES.
// ---------------------------------------------------------------------------------------------

const plaintextCodec = Object.freeze({
  encrypted: false,
  async decode(frame) {
    return { event: frame.event, data: frame.data, id: frame.id, encrypted: false };
  },
  encode(message) {
    return JSON.stringify(message);
  },
});

class V1Codec {
  #key;
  constructor(key) {
    this.#key = key;
  }
  get encrypted() {
    return true;
  }
  async decode(frame) {
    if (frame.event !== 'encrypted') {
      // SECURITY: after the handshake the server seals everything; a plaintext frame is injected.
      throw new ProtocolError(`plaintext "${frame.event}" frame on an encrypted connection was dropped`, {
        data: frame,
      });
    }
    const { iv, ct } = frame.data ?? {};
    const text = await openV1(this.#key, iv, ct);
    let inner;
    try {
      inner = JSON.parse(text);
    } catch (cause) {
      throw new DecryptError('decrypted record is not JSON', { cause });
    }
    if (!inner || typeof inner.event !== 'string' || inner.event === 'encrypted') {
      throw new DecryptError('decrypted record is not a message');
    }
    return { event: inner.event, data: inner.data, id: inner.id, encrypted: true };
  }
  encode(message) {
    return JSON.stringify(message); // v1: client -> server stays plaintext
  }
}

/** @type {Record<string, {name: string, begin(): Promise<{auth: object, finish(connected: object): Promise<object>}>}>} */
const PROFILES = {
  none: {
    name: 'none',
    async begin() {
      return { auth: {}, finish: async () => plaintextCodec };
    },
  },
  v1: {
    name: 'v1',
    async begin() {
      const pair = await generateKeyPair(); // fresh per connection
      return {
        auth: { publicKey: await exportPublicKeyB64(pair.publicKey) },
        async finish(connected) {
          if (!connected?.serverPublicKey || !connected?.salt) return plaintextCodec; // server declined
          return new V1Codec(await deriveV1Key(pair.privateKey, connected.serverPublicKey, connected.salt));
        },
      };
    },
  },
};

// ---------------------------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------------------------

const OPEN = 1;

/**
 * A sealcast connection with authentication, transparent decryption, heartbeat, room tracking
 * and automatic reconnect.
 *
 * Events: every server event by name, handlers get `(data, {event, encrypted, id})`; `'*'` gets
 * every server event; lifecycle `'open'` (socket open), `'close'` ({code, reason, error,
 * willReconnect}), `'reconnecting'` ({attempt, delay}), `'error'` (a {@link SealcastError}:
 * {@link ServerError} for the server's `error` event, {@link DecryptError}, {@link ProtocolError}...),
 * `'raw'` (every parsed frame as received, before decryption — for debugging and tests).
 */
export class SealcastClient {
  #opts;
  #reconnect;
  #listeners = new Map();
  #ws = null;
  #codec = plaintextCodec;
  #state = 'idle';
  #connected = null;
  #rooms = new Set();
  #heartbeat = null;
  #reconnectTimer = null;
  #attempt = 0;
  #explicitClose = false;
  #pending = null; // {promise, resolve, reject} of the current connect()
  #inbound = Promise.resolve(); // keeps decryption (async) in arrival order
  #handshake = null; // the profile's handshake for the current socket
  #timedOut = false;
  #localError = null; // a client-side reason to close, reported instead of the close code's

  /**
   * @param {object} options
   * @param {string} options.url WebSocket URL, e.g. `wss://host/ws`
   * @param {string | object | (() => string | Promise<string>)} options.token token string, or a
   *   function returning one (called per connect, so reconnects can refresh it)
   * @param {'v1' | 'none'} [options.encryption] defaults to `'v1'` when WebCrypto is available, else `'none'`
   * @param {boolean} [options.requireEncryption] fail when the server does not complete the
   *   handshake. Defaults to `false`
   * @param {number} [options.heartbeatInterval] ms between heartbeats; 0 disables. Defaults to 30000
   * @param {number} [options.connectTimeout] ms until `connected` must arrive. Defaults to 15000
   * @param {Partial<typeof DEFAULT_RECONNECT> | boolean} [options.reconnect] Defaults to {@link DEFAULT_RECONNECT}
   * @param {typeof WebSocket} [options.WebSocket] WebSocket constructor. Defaults to `globalThis.WebSocket`
   */
  constructor(options) {
    if (!options || typeof options.url !== 'string') throw new TypeError('options.url is required');
    if (options.token == null) throw new TypeError('options.token is required');
    const encryption = options.encryption ?? (globalThis.crypto?.subtle ? 'v1' : 'none');
    if (!PROFILES[encryption]) throw new TypeError(`unknown encryption profile "${encryption}"`);
    const WS = options.WebSocket ?? globalThis.WebSocket;
    if (typeof WS !== 'function') throw new TypeError('no WebSocket implementation: pass options.WebSocket');
    this.#opts = {
      heartbeatInterval: 30_000,
      connectTimeout: 15_000,
      requireEncryption: false,
      ...options,
      encryption,
      WebSocket: WS,
    };
    const r = options.reconnect;
    this.#reconnect = { ...DEFAULT_RECONNECT, ...(typeof r === 'object' ? r : r === false ? { enabled: false } : {}) };
  }

  /** `'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed'` */
  get state() {
    return this.#state;
  }
  /** True once the server's records are being decrypted (the handshake completed). */
  get encrypted() {
    return this.#codec.encrypted;
  }
  /** The server's last `connected` data, or `null`. */
  get connectedInfo() {
    return this.#connected;
  }
  /** Rooms requested with `join()` (re-joined after a reconnect). */
  get rooms() {
    return [...this.#rooms];
  }

  /**
   * Subscribe to an event. Returns a function that unsubscribes.
   * @param {string} event
   * @param {(data: any, meta: {event: string, encrypted: boolean, id?: string}) => void} fn
   * @returns {() => void}
   */
  on(event, fn) {
    if (typeof fn !== 'function') throw new TypeError('listener must be a function');
    if (!this.#listeners.has(event)) this.#listeners.set(event, new Set());
    this.#listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  /** Remove a listener added with `on` or `once`. */
  off(event, fn) {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const f of set) if (f === fn || f.listener === fn) set.delete(f);
  }

  /** Subscribe for one call only. Returns a function that unsubscribes. */
  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn(...args);
    };
    wrapper.listener = fn;
    return this.on(event, wrapper);
  }

  /**
   * Open the socket, authenticate and (with encryption) complete the handshake.
   * Resolves with the `connected` data; rejects with a {@link SealcastError} (typed by close code)
   * if the connection closes first.
   * @returns {Promise<{id: string, userId: string, time: string, serverPublicKey?: string, salt?: string}>}
   */
  connect() {
    if (this.#state === 'connected') return Promise.resolve(this.#connected);
    if (this.#pending) return this.#pending.promise;
    this.#explicitClose = false;
    clearTimeout(this.#reconnectTimer);
    return this.#open();
  }

  /**
   * Join rooms (the server's validator decides; there is no acknowledgement).
   * @param {string | string[]} rooms
   */
  join(rooms) {
    const list = roomList(rooms);
    for (const r of list) this.#rooms.add(r);
    if (this.#state === 'connected') this.#write({ event: 'join', data: { rooms: list } });
  }

  /**
   * Leave rooms.
   * @param {string | string[]} rooms
   */
  leave(rooms) {
    const list = roomList(rooms);
    for (const r of list) this.#rooms.delete(r);
    if (this.#state === 'connected') this.#write({ event: 'leave', data: { rooms: list } });
  }

  /**
   * Send a custom event. Throws if not connected or if `event` is a system event.
   * @param {string} event
   * @param {unknown} [data]
   */
  send(event, data) {
    if (typeof event !== 'string' || !event) throw new TypeError('event must be a non-empty string');
    if (SYSTEM_EVENTS.has(event)) throw new TypeError(`"${event}" is a system event; use the client's methods`);
    if (this.#state !== 'connected') throw new SealcastError('not connected');
    this.#write(data === undefined ? { event } : { event, data });
  }

  /**
   * Close for good (no reconnect). Resolves once the socket has closed.
   * @param {number} [code] Defaults to 1000
   * @param {string} [reason]
   * @returns {Promise<void>}
   */
  close(code = CloseCode.NORMAL, reason = '') {
    this.#explicitClose = true;
    clearTimeout(this.#reconnectTimer);
    const ws = this.#ws;
    if (!ws || ws.readyState >= 2) {
      if (this.#state === 'reconnecting') this.#finishClose(code, reason, null);
      this.#state = 'closed';
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.once('close', () => resolve());
      ws.close(code, reason);
    });
  }

  // --- internals ------------------------------------------------------------------------------

  #open() {
    let resolve, reject;
    const promise = new Promise((res, rej) => ((resolve = res), (reject = rej)));
    promise.catch(() => {}); // internal reconnects may have nobody awaiting
    this.#pending = { promise, resolve, reject };
    this.#state = this.#attempt > 0 ? 'reconnecting' : 'connecting';
    this.#codec = plaintextCodec;
    this.#inbound = Promise.resolve();

    let ws;
    try {
      ws = new this.#opts.WebSocket(this.#opts.url);
    } catch (cause) {
      const err = new SealcastError(`cannot open ${this.#opts.url}`, { cause });
      this.#pending = null;
      this.#state = 'closed';
      reject(err);
      return promise;
    }
    this.#ws = ws;
    this.#handshake = null;
    this.#timedOut = false;
    const timer = setTimeout(() => {
      if (this.#ws === ws && this.#state !== 'connected') {
        this.#timedOut = true;
        ws.close(4000, 'connect timeout');
      }
    }, this.#opts.connectTimeout);

    ws.onopen = () => {
      this.#emit('open', undefined, { event: 'open', encrypted: false });
      this.#authenticate(ws).catch((e) => {
        this.#emit('error', e instanceof SealcastError ? e : new SealcastError('authentication setup failed', { cause: e }));
        ws.close(4000, 'client handshake failed');
      });
    };
    ws.onmessage = (ev) => {
      if (this.#ws !== ws) return;
      const text = frameText(ev.data);
      this.#inbound = this.#inbound.then(() => this.#onFrame(text)).catch((e) => this.#emit('error', e));
    };
    ws.onerror = () => {}; // the close event that follows carries the outcome
    ws.onclose = (ev) => {
      clearTimeout(timer);
      if (this.#ws !== ws) return;
      // let queued frames (e.g. an `error` before a 4003) be delivered before the close
      this.#inbound.then(() => this.#onClose(ev.code, ev.reason ?? ''));
    };
    return promise;
  }

  async #authenticate(ws) {
    const handshake = await PROFILES[this.#opts.encryption].begin();
    const t = this.#opts.token;
    const token = typeof t === 'function' ? await t() : t;
    const auth = typeof token === 'object' ? { type: 'token', ...token } : { type: 'token', token };
    if (this.#ws !== ws || ws.readyState !== OPEN) return; // superseded or closed meanwhile
    this.#handshake = handshake;
    ws.send(JSON.stringify({ event: 'authenticate', data: { ...auth, ...handshake.auth } }));
  }

  async #onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      frame = null;
    }
    if (!frame || typeof frame !== 'object' || typeof frame.event !== 'string') {
      this.#emit('error', new ProtocolError('dropped a frame that is not {event, data}', { data: text }));
      return;
    }
    this.#emit('raw', frame, { event: frame.event, encrypted: frame.event === 'encrypted' });

    if (frame.event === 'connected' && this.#state !== 'connected') return this.#onConnected(frame.data ?? {});

    let msg;
    try {
      msg = await this.#codec.decode(frame);
    } catch (e) {
      // SECURITY: a record that fails to open is dropped, never delivered.
      this.#emit('error', e instanceof SealcastError ? e : new DecryptError('undecodable frame', { cause: e }));
      return;
    }
    const meta = { event: msg.event, encrypted: msg.encrypted };
    if (msg.id !== undefined) meta.id = msg.id;
    if (msg.event === 'error') {
      const message = typeof msg.data?.message === 'string' ? msg.data.message : 'Server error';
      this.#emit('error', new ServerError(message, { data: msg.data }), meta);
      this.#emit('*', msg.data, meta);
      return;
    }
    this.#emit('*', msg.data, meta);
    if (!LIFECYCLE_EVENTS.has(msg.event)) this.#emit(msg.event, msg.data, meta);
  }

  async #onConnected(data) {
    const ws = this.#ws;
    try {
      this.#codec = this.#handshake ? await this.#handshake.finish(data) : plaintextCodec;
    } catch (cause) {
      this.#emit('error', new SealcastError('encryption handshake failed', { cause }));
      ws.close(4000, 'encryption handshake failed');
      return;
    }
    if (this.#opts.requireEncryption && !this.#codec.encrypted) {
      this.#localError = new EncryptionRequiredError('server did not complete the encryption handshake', {
        code: CloseCode.ENCRYPTION_REQUIRED,
      });
      ws.close(4000, 'encryption required');
      return;
    }
    this.#state = 'connected';
    this.#connected = data;
    this.#attempt = 0;
    if (this.#rooms.size) this.#write({ event: 'join', data: { rooms: [...this.#rooms] } });
    this.#startHeartbeat();
    const pending = this.#pending;
    this.#pending = null;
    pending?.resolve(data);
    this.#emit('connected', data, { event: 'connected', encrypted: false });
  }

  #onClose(code, reason) {
    clearInterval(this.#heartbeat);
    this.#heartbeat = null;
    this.#codec = plaintextCodec;
    this.#ws = null;
    let error = this.#localError ?? errorForClose(code, reason);
    this.#localError = null;
    if (this.#timedOut) error = new SealcastError('timed out waiting for "connected"', { code, reason });
    // the caller's own close() is not an error, even when the server skips the closing handshake
    else if (this.#explicitClose && !this.#pending) error = null;
    const wasConnected = this.#state === 'connected';
    const pending = this.#pending;
    this.#pending = null;
    if (pending) pending.reject(error ?? new ConnectionClosedError('connection closed before "connected"', { code, reason }));

    const r = this.#reconnect;
    const terminal = TERMINAL_CLOSE_CODES.has(code) || error instanceof EncryptionRequiredError;
    // Reconnect after losing an established connection, and keep retrying failed reconnects;
    // a first connect() that fails is reported to its caller instead.
    const retrying = wasConnected || this.#attempt > 0;
    const willReconnect = r.enabled && !this.#explicitClose && !terminal && retrying && this.#attempt < r.maxAttempts;
    this.#finishClose(code, reason, error, willReconnect);
    if (willReconnect) this.#scheduleReconnect();
  }

  #finishClose(code, reason, error, willReconnect = false) {
    this.#state = willReconnect ? 'reconnecting' : 'closed';
    this.#emit('close', { code, reason, error, willReconnect }, { event: 'close', encrypted: false });
  }

  #scheduleReconnect() {
    this.#attempt += 1;
    const delay = backoffDelay(this.#attempt, this.#reconnect);
    this.#emit('reconnecting', { attempt: this.#attempt, delay }, { event: 'reconnecting', encrypted: false });
    this.#reconnectTimer = setTimeout(() => {
      if (!this.#explicitClose) this.#open();
    }, delay);
  }

  #startHeartbeat() {
    const every = this.#opts.heartbeatInterval;
    if (!(every > 0)) return;
    this.#heartbeat = setInterval(() => this.#write({ event: 'heartbeat' }), every);
  }

  #write(message) {
    const ws = this.#ws;
    if (ws && ws.readyState === OPEN) ws.send(this.#codec.encode(message));
  }

  #emit(event, data, meta) {
    const set = this.#listeners.get(event);
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(data, meta);
      } catch (e) {
        // a throwing listener must not break the connection; surface it asynchronously
        setTimeout(() => {
          throw e;
        });
      }
    }
  }
}

function roomList(rooms) {
  const list = Array.isArray(rooms) ? rooms : [rooms];
  if (!list.every((r) => typeof r === 'string' && r.length > 0)) throw new TypeError('rooms must be non-empty strings');
  return list;
}

function frameText(data) {
  if (typeof data === 'string') return data;
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) return new TextDecoder().decode(data);
  return String(data);
}
