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
 * Layout of this file: base64/UTF-8 utilities, the v1 crypto helpers, the v2 handshake and
 * record layer, the typed errors, the reconnect backoff, the protocol profiles (`v2` by default,
 * `v1` and `none` on request), and the client itself.
 *
 * Encryption v2 (`sealcast-v2`, see SECURITY.md): before `authenticate` the client sends a
 * `handshake` with a fresh P-256 key and nonce; the server answers with its own fresh key, a
 * nonce, an optional ECDSA signature over the transcript and its `fin`; from then on every frame
 * in both directions is a sealed record with an implicit sequence number. Pin the server's
 * signing key with the `serverSigningKey` option. The client also offers `sealcast-v2-batch`:
 * the server may then seal several frames into one record (a JSON array of frames), which the
 * client delivers as separate events, in order.
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

/** The version token of encryption v2. */
export const V2_VERSION = 'sealcast-v2';
/**
 * The extra token a v2 client offers (after {@link V2_VERSION}) when it accepts batched
 * server→client records: one record whose plaintext is a JSON array of complete frames.
 */
export const V2_BATCH = 'sealcast-v2-batch';
/** Records per direction under one key before both sides rekey (2^20). */
export const V2_REKEY_INTERVAL = 2 ** 20;
/** Records per direction after which a v2 channel refuses to continue (2^32). */
export const V2_MAX_RECORDS = 2 ** 32;

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
// v2 crypto: ephemeral P-256 ECDH both sides, transcript-bound HKDF-SHA256 key schedule,
// AES-256-GCM records with implicit per-direction counters. Mirrors src/crypto/v2/ in Rust;
// tests/vectors/sealcast-v2.json pins both to the same bytes.
// ---------------------------------------------------------------------------------------------

const V2_NONCE_BYTES = 32;
const V2_HASH_BYTES = 32;
const V2_SIG_BYTES = 64;
const V2_IV_BYTES = 12;
const V2_TAG_BYTES = 16;
const V2_DIR_C2S = 0x01;
const V2_DIR_S2C = 0x02;
const V2_LABELS = Object.freeze({
  transcript: encoder.encode('sealcast-v2 transcript'),
  c2s: encoder.encode('sealcast-v2 c2s'),
  s2c: encoder.encode('sealcast-v2 s2c'),
  cFin: encoder.encode('sealcast-v2 c fin'),
  sFin: encoder.encode('sealcast-v2 s fin'),
  key: encoder.encode('sealcast-v2 key'),
  iv: encoder.encode('sealcast-v2 iv'),
  update: encoder.encode('sealcast-v2 traffic upd'),
  signature: encoder.encode('sealcast-v2 server signature\0'),
});
const V2_TOKEN = /^[A-Za-z0-9._-]{1,32}$/;

function concatBytes(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Canonical standard base64 of exactly `len` bytes, or a {@link SealcastError} naming `what`. */
function b64Fixed(value, len, what) {
  let bytes;
  try {
    bytes = b64ToBytes(value);
  } catch {
    bytes = null;
  }
  // SECURITY: one encoding per value (atob alone also takes unpadded or spaced input).
  if (!bytes || bytes.length !== len || bytesToB64(bytes) !== value) {
    throw new SealcastError(`${what} must be standard base64 of ${len} bytes`);
  }
  return bytes;
}

async function hmacSha256(keyBytes, data) {
  const key = await subtle().importKey('raw', keyBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  return new Uint8Array(await subtle().sign('HMAC', key, data));
}

/** HKDF-Expand(prk, info, len) for len <= 32 (one HMAC block): `HMAC(prk, info ‖ 0x01)[..len]`. */
async function hkdfExpand(prk, info, len) {
  const block = await hmacSha256(prk, concatBytes(info, Uint8Array.of(1)));
  const out = block.slice(0, len);
  block.fill(0);
  return out;
}

/**
 * The v2 transcript hash `th` (see SECURITY.md for the layout).
 * @param {{offered: string[], chosen: string, clientPub: Uint8Array, clientNonce: Uint8Array,
 *   serverPub: Uint8Array, serverNonce: Uint8Array, signed: boolean}} t
 * @returns {Promise<Uint8Array>}
 */
export async function v2TranscriptHash(t) {
  const lp = (str) => {
    const b = encoder.encode(str);
    return concatBytes(Uint8Array.of(b.length), b);
  };
  const bytes = concatBytes(
    V2_LABELS.transcript,
    Uint8Array.of(t.offered.length),
    ...t.offered.map(lp),
    lp(t.chosen),
    t.clientPub,
    t.clientNonce,
    t.serverPub,
    t.serverNonce,
    Uint8Array.of(t.signed ? 1 : 0),
  );
  return new Uint8Array(await subtle().digest('SHA-256', bytes));
}

/** One epoch's AES key and IV base, derived from a traffic secret. */
async function v2EpochKeys(secret, usage) {
  const keyBytes = await hkdfExpand(secret, V2_LABELS.key, 32);
  const key = await subtle().importKey('raw', keyBytes, { name: 'AES-GCM' }, false, [usage]);
  keyBytes.fill(0);
  return { key, iv: await hkdfExpand(secret, V2_LABELS.iv, V2_IV_BYTES), secret };
}

/**
 * One direction of a v2 channel: the counter, the epoch keys (rekeyed every
 * {@link V2_REKEY_INTERVAL} records) and the AAD. `seal`/`open` assign the sequence number
 * synchronously, before any `await`, so concurrent calls can neither reuse nor reorder numbers.
 */
class V2Direction {
  #dir;
  #usage;
  #seq = 0;
  #epoch = 0;
  #keys;
  #failed = false;
  /**
   * @param {Uint8Array} secret the traffic secret of the epoch `seq` falls in (taken over and wiped)
   * @param {number} dir V2_DIR_C2S or V2_DIR_S2C
   * @param {'encrypt' | 'decrypt'} usage
   * @param {number} [seq] the next record number (tests only)
   */
  constructor(secret, dir, usage, seq = 0) {
    this.#dir = dir;
    this.#usage = usage;
    this.#seq = seq;
    this.#epoch = Math.floor(seq / V2_REKEY_INTERVAL);
    this.#keys = v2EpochKeys(secret, usage);
    this.#keys.catch(() => {});
  }
  get nextSeq() {
    return this.#seq;
  }
  get failed() {
    return this.#failed;
  }
  /** Marks the direction dead (e.g. a record opened but its plaintext was refused). */
  fail() {
    this.#failed = true;
  }
  /** Claims the next sequence number and its epoch's keys (synchronously). */
  #claim() {
    // SECURITY: hard limit; after any failure the direction is dead.
    if (this.#failed || this.#seq >= V2_MAX_RECORDS) {
      this.#failed = true;
      throw new DecryptError('the v2 channel is closed (failure or record limit)');
    }
    const seq = this.#seq++;
    const epoch = Math.floor(seq / V2_REKEY_INTERVAL);
    if (epoch !== this.#epoch) {
      // SECURITY: rekey; the previous secret is wiped once the next one is derived.
      this.#epoch = epoch;
      this.#keys = this.#keys.then(async (prev) => {
        const next = await hkdfExpand(prev.secret, V2_LABELS.update, 32);
        prev.secret.fill(0);
        return v2EpochKeys(next, this.#usage);
      });
      this.#keys.catch(() => {});
    }
    return { seq, keys: this.#keys };
  }
  /**
   * Claims the next sequence number now (before any await, so concurrent calls keep their
   * order); resolves with its epoch's key and the AES-GCM parameters for that number.
   */
  #next() {
    let claim;
    try {
      claim = this.#claim();
    } catch (e) {
      return Promise.reject(e);
    }
    const { seq, keys } = claim;
    return keys.then(({ key, iv }) => ({ key, params: this.#params(iv, seq) }));
  }
  #params(iv, seq) {
    const hi = Math.floor(seq / 2 ** 32);
    const lo = seq >>> 0;
    const nonce = iv.slice();
    const view = new DataView(nonce.buffer);
    view.setUint32(4, view.getUint32(4) ^ hi);
    view.setUint32(8, view.getUint32(8) ^ lo);
    const aad = new Uint8Array(V2_VERSION.length + 9);
    aad.set(encoder.encode(V2_VERSION));
    aad[V2_VERSION.length] = this.#dir;
    const av = new DataView(aad.buffer);
    av.setUint32(V2_VERSION.length + 1, hi);
    av.setUint32(V2_VERSION.length + 5, lo);
    return { name: 'AES-GCM', iv: nonce, additionalData: aad, tagLength: V2_TAG_BYTES * 8 };
  }
  /**
   * Seal bytes as the next record; resolves with the record's wire text.
   * @param {Uint8Array} plaintext
   * @returns {Promise<string>}
   */
  seal(plaintext) {
    return this.#next().then(async ({ key, params }) => {
      const ct = new Uint8Array(await subtle().encrypt(params, key, plaintext));
      return JSON.stringify({ event: 'encrypted', data: { ct: bytesToB64(ct) } });
    });
  }
  /**
   * Open the next record (a parsed frame). Rejects with {@link DecryptError} on any failure,
   * after which every further record is refused.
   * @param {unknown} frame
   * @returns {Promise<Uint8Array>}
   */
  open(frame) {
    return this.#next().then(async ({ key, params }) => {
      const ct = v2RecordCiphertext(frame);
      if (!ct) throw new DecryptError('not a v2 record');
      return new Uint8Array(await subtle().decrypt(params, key, ct));
    }).catch((cause) => {
      this.#failed = true;
      throw cause instanceof DecryptError ? cause : new DecryptError('v2 record failed authentication', { cause });
    });
  }
}

/** The ciphertext of `{"event":"encrypted","data":{"ct":"<b64>"}}` (nothing more), or null. */
function v2RecordCiphertext(frame) {
  if (!frame || typeof frame !== 'object' || frame.event !== 'encrypted') return null;
  if (Object.keys(frame).length !== 2 || !frame.data || typeof frame.data !== 'object') return null;
  if (Object.keys(frame.data).length !== 1 || typeof frame.data.ct !== 'string') return null;
  let ct;
  try {
    ct = b64ToBytes(frame.data.ct);
  } catch {
    return null;
  }
  if (ct.length < V2_TAG_BYTES || bytesToB64(ct) !== frame.data.ct) return null;
  return ct;
}

/** A decrypted frame as a message, or a {@link DecryptError} (`what` names it in the error). */
function v2Message(inner, what) {
  if (!inner || typeof inner !== 'object' || Array.isArray(inner) || typeof inner.event !== 'string' || inner.event === 'encrypted') {
    throw new DecryptError(`${what} is not a message`);
  }
  return { event: inner.event, data: inner.data, id: inner.id, encrypted: true };
}

/**
 * The messages of an opened record's plaintext: one for a single frame, one per element for a
 * batch (plaintext starting with `[`: a non-empty JSON array of frames, in the order sent).
 * @param {Uint8Array} bytes
 * @param {{batches: boolean, batchOk: boolean}} opts `batches`: this side offered
 *   {@link V2_BATCH}; `batchOk`: the caller takes several messages
 * @returns {Array<{event: string, data: unknown, id?: string, encrypted: true}>}
 */
function v2Messages(bytes, { batches, batchOk }) {
  let text, inner;
  try {
    text = strictDecoder.decode(bytes);
    inner = JSON.parse(text);
  } catch (cause) {
    throw new DecryptError('decrypted record is not JSON text', { cause });
  }
  if (!text.startsWith('[')) return [v2Message(inner, 'decrypted record')];
  // SECURITY: a batch is only valid on a channel that offered it (the offer is in the transcript).
  if (!batches) throw new DecryptError(`decrypted record is a batch, but ${V2_BATCH} was not offered`);
  if (!batchOk) throw new DecryptError('decrypted record is a batch of messages: open it with decodeAll');
  if (!Array.isArray(inner) || inner.length === 0) throw new DecryptError('decrypted batch is empty');
  return inner.map((m, i) => v2Message(m, `batch element ${i}`));
}

/**
 * An established v2 channel. On the client (the default role) it seals client→server and opens
 * server→client; with `role: 'server'` the other way round (for tests and tools that play the
 * server). Every frame in both directions is a record; a plaintext or failing frame is fatal.
 * A record is a single frame or, server→client on a channel that offered {@link V2_BATCH}, a
 * batch of frames; either way it is one sequence number.
 */
export class V2Codec {
  #out;
  #in;
  #server;
  #batches;
  /**
   * @param {Uint8Array} c2s client→server traffic secret (taken over and wiped on rekey)
   * @param {Uint8Array} s2c server→client traffic secret
   * @param {{role?: 'client' | 'server', batches?: boolean, c2sSeq?: number, s2cSeq?: number}} [opts]
   *   the role (defaults to `'client'`); `batches`: this side offered {@link V2_BATCH}, so the
   *   peer's records may be batches (defaults to `false`: a batch is a {@link DecryptError});
   *   for tests only, the next record numbers with the secrets being those of the epochs they
   *   fall in
   */
  constructor(c2s, s2c, opts = {}) {
    const up = new V2Direction(c2s, V2_DIR_C2S, opts.role === 'server' ? 'decrypt' : 'encrypt', opts.c2sSeq ?? 0);
    const down = new V2Direction(s2c, V2_DIR_S2C, opts.role === 'server' ? 'encrypt' : 'decrypt', opts.s2cSeq ?? 0);
    this.#server = opts.role === 'server';
    this.#batches = opts.batches === true;
    [this.#out, this.#in] = this.#server ? [down, up] : [up, down];
  }
  get encrypted() {
    return true;
  }
  get profile() {
    return 'v2';
  }
  /** True once a record failed (or a limit was hit): the connection must close. */
  get failed() {
    return this.#out.failed || this.#in.failed;
  }
  /** Whether the peer's records may be batches (this side offered {@link V2_BATCH}). */
  get batches() {
    return this.#batches;
  }
  /** The next record numbers this side seals (`out`) and opens (`in`). */
  get seq() {
    return { out: this.#out.nextSeq, in: this.#in.nextSeq };
  }
  /**
   * Seal a message (the sequence number is taken now, synchronously).
   * @param {{event: string, data?: unknown}} message
   * @returns {Promise<string>}
   */
  encode(message) {
    return this.#out.seal(encoder.encode(JSON.stringify(message)));
  }
  /**
   * Server role only: seal several messages as one batch record (plaintext
   * `JSON.stringify(messages)`), for tests and tools that play the server. The sequence number
   * is taken now, synchronously. The elements are sealed as given, not checked, so malformed
   * batches can be built on purpose. Rejects with a TypeError (taking no sequence number) for
   * an empty or non-array `messages` or on a client-role codec.
   * @param {Array<{event: string, data?: unknown}>} messages
   * @returns {Promise<string>}
   */
  encodeBatch(messages) {
    if (!this.#server) return Promise.reject(new TypeError('encodeBatch seals server→client records: use a role: "server" codec'));
    if (!Array.isArray(messages) || messages.length === 0) {
      return Promise.reject(new TypeError('encodeBatch needs a non-empty array of messages'));
    }
    return this.#out.seal(encoder.encode(JSON.stringify(messages)));
  }
  /**
   * Open the peer's next record into a message. Rejects with DecryptError (tampered, replayed,
   * reordered, dropped, reflected, or a batch: use {@link V2Codec#decodeAll} for those) or
   * ProtocolError (plaintext); either is fatal in v2, and the record's sequence number is used.
   * @param {unknown} frame
   * @returns {Promise<{event: string, data: unknown, id?: string, encrypted: true}>}
   */
  async decode(frame) {
    const [message] = await this.#open(frame, false);
    return message;
  }
  /**
   * Open the peer's next record into its messages: one for a single-frame record, one per frame,
   * in order, for a batch. Same failures as {@link V2Codec#decode}, plus a batch on a channel
   * that did not offer {@link V2_BATCH}, an empty batch or an element that is not a message.
   * @param {unknown} frame
   * @returns {Promise<Array<{event: string, data: unknown, id?: string, encrypted: true}>>}
   */
  async decodeAll(frame) {
    return this.#open(frame, true);
  }
  async #open(frame, batchOk) {
    if (frame?.event !== 'encrypted') {
      // SECURITY: after the handshake every server frame is sealed; claim the slot anyway so the
      // channel is dead from here on.
      await this.#in.open(null).catch(() => {});
      throw new ProtocolError(`plaintext "${frame?.event}" frame on a v2 connection`, { data: frame });
    }
    const bytes = await this.#in.open(frame);
    try {
      return v2Messages(bytes, { batches: this.#batches, batchOk });
    } catch (e) {
      // SECURITY: an authentic record with unusable plaintext is as fatal as a forged one.
      this.#in.fail();
      throw e;
    }
  }
}

/**
 * Import a pinned server signing key (base64 raw 65-byte uncompressed P-256 point) for ECDSA
 * verification.
 * @param {string} publicKeyB64
 * @returns {Promise<CryptoKey>}
 */
export async function importServerSigningKey(publicKeyB64) {
  return subtle().importKey('raw', rawPublicKey(publicKeyB64), { name: 'ECDSA', namedCurve: 'P-256' }, false, ['verify']);
}

/**
 * Start a v2 handshake: a fresh ECDH key pair and nonce (or injected ones, for test vectors).
 * `hello` is the first frame to send; `finish(serverHelloData, opts)` verifies the server's
 * answer and resolves with the channel and the first record to send (this side's `fin`).
 * `offered` defaults to `[V2_VERSION, V2_BATCH]`; the channel accepts batched records exactly
 * when {@link V2_BATCH} is among the offered tokens.
 * @param {{keyPair?: {privateKey: CryptoKey, publicKeyB64: string}, nonce?: Uint8Array, offered?: string[]}} [opts]
 * @returns {Promise<{hello: string, finish(data: unknown, opts?: {serverSigningKey?: string}): Promise<{codec: V2Codec, finRecord: string}>}>}
 */
export async function startV2Handshake(opts = {}) {
  const offered = opts.offered ?? [V2_VERSION, V2_BATCH];
  if (!Array.isArray(offered) || offered.length < 1 || offered.length > 8 || !offered.every((v) => V2_TOKEN.test(v))) {
    throw new TypeError('offered must be 1 to 8 version tokens');
  }
  let privateKey, publicKeyB64;
  if (opts.keyPair) {
    ({ privateKey, publicKeyB64 } = opts.keyPair);
  } else {
    const pair = await generateKeyPair(); // fresh per connection, private key not extractable
    privateKey = pair.privateKey;
    publicKeyB64 = await exportPublicKeyB64(pair.publicKey);
  }
  const clientNonce = opts.nonce ?? globalThis.crypto.getRandomValues(new Uint8Array(V2_NONCE_BYTES));
  if (clientNonce.length !== V2_NONCE_BYTES) throw new TypeError('nonce must be 32 bytes');
  const clientPub = rawPublicKey(publicKeyB64);
  const hello = JSON.stringify({ event: 'handshake', data: { v: offered, pub: publicKeyB64, nonce: bytesToB64(clientNonce) } });

  async function finish(data, { serverSigningKey } = {}) {
    if (!data || typeof data !== 'object' || Array.isArray(data)) throw new SealcastError('server hello is not an object');
    // SECURITY: having offered v2, accept nothing else (no downgrade).
    if (data.v !== V2_VERSION) throw new SealcastError(`server chose ${JSON.stringify(data.v)}, not ${V2_VERSION}`);
    const serverPub = rawPublicKey(typeof data.pub === 'string' ? data.pub : '');
    const serverNonce = b64Fixed(data.nonce, V2_NONCE_BYTES, 'server nonce');
    const serverFin = b64Fixed(data.fin, V2_HASH_BYTES, 'server fin');
    const signed = data.sig !== undefined && data.sig !== null;
    const sig = signed ? b64Fixed(data.sig, V2_SIG_BYTES, 'server signature') : null;
    let peer;
    try {
      peer = await importPublicKeyB64(data.pub); // WebCrypto refuses points off the curve
    } catch (cause) {
      throw new SealcastError('server key is not a valid P-256 point', { cause });
    }
    const th = await v2TranscriptHash({ offered, chosen: V2_VERSION, clientPub, clientNonce, serverPub, serverNonce, signed });
    const shared = new Uint8Array(await subtle().deriveBits({ name: 'ECDH', public: peer }, privateKey, 256));
    const prk = await hmacSha256(concatBytes(clientNonce, serverNonce), shared); // HKDF-Extract
    shared.fill(0);
    const expand = (label, len) => hkdfExpand(prk, concatBytes(label, th), len);
    const sFinKey = await expand(V2_LABELS.sFin, 32);
    const sFin = await subtle().importKey('raw', sFinKey, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    sFinKey.fill(0);
    // SECURITY: WebCrypto's HMAC verify compares in constant time.
    if (!(await subtle().verify('HMAC', sFin, serverFin, th))) {
      prk.fill(0);
      throw new SealcastError('server fin does not match the transcript');
    }
    if (serverSigningKey !== undefined) {
      // SECURITY: a pinning client requires the signature; stripping it fails here.
      if (!sig) throw new SealcastError('server hello is not signed, but a signing key is pinned');
      const pinned = await importServerSigningKey(serverSigningKey);
      const ok = await subtle().verify({ name: 'ECDSA', hash: 'SHA-256' }, pinned, sig, concatBytes(V2_LABELS.signature, th));
      if (!ok) throw new SealcastError('server signature does not verify with the pinned key');
    }
    const cFinKey = await expand(V2_LABELS.cFin, 32);
    const clientFin = await hmacSha256(cFinKey, th);
    cFinKey.fill(0);
    const codec = new V2Codec(await expand(V2_LABELS.c2s, 32), await expand(V2_LABELS.s2c, 32), {
      batches: offered.includes(V2_BATCH),
    });
    prk.fill(0);
    const finRecord = await codec.encode({ event: 'handshake', data: { fin: bytesToB64(clientFin) } });
    return { codec, finRecord };
  }
  return { hello, finish };
}

/**
 * The server's side of a v2 handshake, for tests and tools that play the server (the Rust
 * server is the real one). Answers a client hello's `data`; `finish(firstRecord)` opens the
 * client's first record, checks its `fin` and resolves with the server's {@link V2Codec}.
 * @param {unknown} data the client hello's `data`
 * @param {{signingKey?: CryptoKey, keyPair?: {privateKey: CryptoKey, publicKeyB64: string}, nonce?: Uint8Array}} [opts]
 *   `signingKey`: an ECDSA P-256 private key to sign with; `keyPair`/`nonce`: fixed values (vectors only)
 * @returns {Promise<{hello: string, finish(firstRecord: unknown): Promise<V2Codec>}>}
 */
export async function acceptV2Handshake(data, opts = {}) {
  const offered = data?.v;
  if (!Array.isArray(offered) || offered.length < 1 || offered.length > 8 || !offered.every((v) => typeof v === 'string' && V2_TOKEN.test(v))) {
    throw new SealcastError('client hello: bad version list');
  }
  if (!offered.includes(V2_VERSION)) throw new SealcastError(`client hello does not offer ${V2_VERSION}`);
  const clientPub = rawPublicKey(typeof data.pub === 'string' ? data.pub : '');
  const clientNonce = b64Fixed(data.nonce, V2_NONCE_BYTES, 'client nonce');
  const peer = await importPublicKeyB64(data.pub);
  let privateKey, publicKeyB64;
  if (opts.keyPair) {
    ({ privateKey, publicKeyB64 } = opts.keyPair);
  } else {
    const pair = await generateKeyPair();
    privateKey = pair.privateKey;
    publicKeyB64 = await exportPublicKeyB64(pair.publicKey);
  }
  const serverNonce = opts.nonce ?? globalThis.crypto.getRandomValues(new Uint8Array(V2_NONCE_BYTES));
  const signed = Boolean(opts.signingKey);
  const th = await v2TranscriptHash({
    offered, chosen: V2_VERSION, clientPub, clientNonce, serverPub: rawPublicKey(publicKeyB64), serverNonce, signed,
  });
  const shared = new Uint8Array(await subtle().deriveBits({ name: 'ECDH', public: peer }, privateKey, 256));
  const prk = await hmacSha256(concatBytes(clientNonce, serverNonce), shared);
  shared.fill(0);
  const expand = (label, len) => hkdfExpand(prk, concatBytes(label, th), len);
  const fin = await hmacSha256(await expand(V2_LABELS.sFin, 32), th);
  const cFinKey = await expand(V2_LABELS.cFin, 32);
  const codec = new V2Codec(await expand(V2_LABELS.c2s, 32), await expand(V2_LABELS.s2c, 32), { role: 'server' });
  prk.fill(0);
  const reply = { v: V2_VERSION, pub: publicKeyB64, nonce: bytesToB64(serverNonce) };
  if (signed) {
    const sig = await subtle().sign({ name: 'ECDSA', hash: 'SHA-256' }, opts.signingKey, concatBytes(V2_LABELS.signature, th));
    reply.sig = bytesToB64(new Uint8Array(sig));
  }
  reply.fin = bytesToB64(fin);
  return {
    hello: JSON.stringify({ event: 'handshake', data: reply }),
    async finish(firstRecord) {
      const msg = await codec.decode(firstRecord);
      if (msg.event !== 'handshake') throw new SealcastError('the first record is not the client fin');
      const key = await subtle().importKey('raw', cFinKey, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
      cFinKey.fill(0);
      const got = b64Fixed(msg.data?.fin, V2_HASH_BYTES, 'client fin');
      if (!(await subtle().verify('HMAC', key, got, th))) throw new SealcastError('client fin does not match');
      return codec;
    },
  };
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
// A profile owns the encryption handshake and the record layer. `begin(options)` resolves with
// one of two shapes:
//   v1 / none: { auth: extra fields for the `authenticate` data,
//                finish(connectedData) -> Promise<Codec> }        (keys arrive in `connected`)
//   v2:        { hello: the first frame to send (before `authenticate`),
//                accept(serverHelloData) -> Promise<{codec, finRecord}> }
//   Codec.encrypted / Codec.profile
//   Codec.decode(frame)          -> Promise<{event, data, encrypted}>  (throws DecryptError/ProtocolError)
//   Codec.decodeAll(frame)       -> Promise<Array<{event, data, encrypted}>>  the frame's messages in
//                                   order: one, or (v2 batch record) several; same errors as decode
//   Codec.encode(message)        -> string or Promise<string> (what goes on the wire, in call order)
// v1 adds the client key to `authenticate` and reads the server key from `connected`; inbound
// frames are sealed, outbound stay plaintext. v2 runs its own `handshake` exchange first, then
// seals everything in both directions (`authenticate` and `connected` included); any record
// failure closes the connection. A v2 record may be a batch of frames (when the client offered
// `sealcast-v2-batch`); the client always reads through `decodeAll`.
// ---------------------------------------------------------------------------------------------

const plaintextCodec = Object.freeze({
  encrypted: false,
  profile: 'none',
  async decode(frame) {
    return { event: frame.event, data: frame.data, id: frame.id, encrypted: false };
  },
  async decodeAll(frame) {
    return [await this.decode(frame)];
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
  get profile() {
    return 'v1';
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
  async decodeAll(frame) {
    return [await this.decode(frame)];
  }
  encode(message) {
    return JSON.stringify(message); // v1: client -> server stays plaintext
  }
}

/** @type {Record<string, {name: string, begin(options: object): Promise<object>}>} */
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
  v2: {
    name: 'v2',
    async begin(options) {
      const hs = await startV2Handshake(); // fresh key and nonce per connection
      return {
        hello: hs.hello,
        accept: (data) => hs.finish(data, { serverSigningKey: options.serverSigningKey }),
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
  #authData = null; // the `authenticate` payload, kept until a v2 handshake completes
  #sendQueue = Promise.resolve(); // keeps asynchronously sealed (v2) frames in call order
  #sendsPending = 0;
  #timedOut = false;
  #localError = null; // a client-side reason to close, reported instead of the close code's

  /**
   * @param {object} options
   * @param {string} options.url WebSocket URL, e.g. `wss://host/ws`
   * @param {string | object | (() => string | Promise<string>)} options.token token string, or a
   *   function returning one (called per connect, so reconnects can refresh it)
   * @param {'v2' | 'v1' | 'none'} [options.encryption] defaults to `'v2'` when WebCrypto is
   *   available, else `'none'`. v2 never falls back to v1: a server that does not answer the v2
   *   handshake fails the connection ({@link EncryptionRequiredError}); choose `'v1'` explicitly
   *   for servers that only speak v1
   * @param {string} [options.serverSigningKey] v2 only: the server's ECDSA P-256 signing public key
   *   (base64 of the raw 65-byte point) to pin; the handshake then requires a valid signature.
   *   Defaults to none (no pinning)
   * @param {boolean} [options.requireEncryption] fail when the server does not complete the
   *   handshake. Defaults to `false` (v2 always requires its handshake)
   * @param {number} [options.heartbeatInterval] ms between heartbeats; 0 disables. Defaults to 30000
   * @param {number} [options.connectTimeout] ms until `connected` must arrive. Defaults to 15000
   * @param {Partial<typeof DEFAULT_RECONNECT> | boolean} [options.reconnect] Defaults to {@link DEFAULT_RECONNECT}
   * @param {typeof WebSocket} [options.WebSocket] WebSocket constructor. Defaults to `globalThis.WebSocket`
   */
  constructor(options) {
    if (!options || typeof options.url !== 'string') throw new TypeError('options.url is required');
    if (options.token == null) throw new TypeError('options.token is required');
    const encryption = options.encryption ?? (globalThis.crypto?.subtle ? 'v2' : 'none');
    if (!Object.hasOwn(PROFILES, encryption)) throw new TypeError(`unknown encryption profile "${encryption}"`);
    if (options.serverSigningKey !== undefined) {
      if (encryption !== 'v2') throw new TypeError('serverSigningKey (pinning) needs the v2 profile');
      rawPublicKey(options.serverSigningKey); // throws early on a malformed key
    }
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
  /** The encryption in effect on this connection: `'v2'`, `'v1'` or `'none'`. */
  get profile() {
    return this.#codec.profile;
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
      // sealed (v2) frames still being encrypted go out first
      this.#sendQueue.then(() => ws.close(code, reason));
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
    this.#sendQueue = Promise.resolve();
    this.#sendsPending = 0;
    this.#authData = null;

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
    const handshake = await PROFILES[this.#opts.encryption].begin(this.#opts);
    const t = this.#opts.token;
    const token = typeof t === 'function' ? await t() : t;
    const auth = typeof token === 'object' ? { type: 'token', ...token } : { type: 'token', token };
    if (this.#ws !== ws || ws.readyState !== OPEN) return; // superseded or closed meanwhile
    this.#handshake = handshake;
    if (handshake.hello) {
      // v2: the handshake goes first; `authenticate` follows sealed once the server answered.
      this.#authData = auth;
      ws.send(handshake.hello);
      return;
    }
    ws.send(JSON.stringify({ event: 'authenticate', data: { ...auth, ...handshake.auth } }));
  }

  /** v2: the server's answer to our hello. Anything but a valid v2 `handshake` fails. */
  async #onServerHello(frame) {
    const ws = this.#ws;
    const fail = (message, cause) => {
      this.#localError = new EncryptionRequiredError(message, { code: CloseCode.ENCRYPTION_REQUIRED, cause });
      this.#emit('error', this.#localError);
      ws.close(CloseCode.ENCRYPTION_REQUIRED, 'v2 handshake failed');
    };
    if (frame.event !== 'handshake') {
      // SECURITY: no fallback to v1 or plaintext: that is exactly what a downgrade looks like.
      if (frame.event === 'error') {
        const message = typeof frame.data?.message === 'string' ? frame.data.message : 'Server error';
        this.#emit('error', new ServerError(message, { data: frame.data }), { event: 'error', encrypted: false });
      }
      return fail(`the server did not answer the ${V2_VERSION} handshake (got "${frame.event}")`);
    }
    let result;
    try {
      result = await this.#handshake.accept(frame.data);
    } catch (cause) {
      return fail(`${V2_VERSION} handshake failed: ${cause?.message ?? cause}`, cause);
    }
    if (this.#ws !== ws) return;
    this.#codec = result.codec;
    this.#handshake = null;
    this.#transmit(ws, result.finRecord);
    this.#transmit(ws, this.#codec.encode({ event: 'authenticate', data: this.#authData }));
    this.#authData = null;
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

    if (this.#handshake?.hello) return this.#onServerHello(frame);
    const v2 = this.#codec.profile === 'v2';
    if (v2 && this.#codec.failed) return; // the channel is dead; the close is on its way
    // v1/none: `connected` is plaintext and carries what the codec needs. (v2 seals it.)
    if (!v2 && frame.event === 'connected' && this.#state !== 'connected') return this.#onConnected(frame.data ?? {});

    let messages;
    try {
      messages = await this.#codec.decodeAll(frame);
    } catch (e) {
      // SECURITY: a record that fails to open is dropped, never delivered.
      const err = e instanceof SealcastError ? e : new DecryptError('undecodable frame', { cause: e });
      this.#emit('error', err);
      if (v2) {
        // SECURITY: in v2 a failed record (tampered, replayed, reordered, dropped, reflected,
        // plaintext) ends the connection; no reconnect, as after a 4004 from the server.
        this.#localError = new DecryptError(`v2 record refused: ${err.message}`, { code: CloseCode.ENCRYPTION_REQUIRED, cause: err });
        this.#ws?.close(CloseCode.ENCRYPTION_REQUIRED, 'v2 record failed');
      }
      return;
    }
    // A v2 batch record carries several frames: each is delivered as if it had arrived alone.
    for (const msg of messages) {
      const pending = this.#deliver(msg, v2);
      if (pending) await pending;
    }
  }

  /**
   * Deliver one decoded message: v2's sealed `connected`, the server's `error`, `*` and the
   * named event (lifecycle names excepted). Returns a promise only for `connected`.
   */
  #deliver(msg, v2) {
    if (v2 && msg.event === 'connected' && this.#state !== 'connected') return this.#onConnected(msg.data ?? {});
    const meta = { event: msg.event, encrypted: msg.encrypted };
    if (msg.id !== undefined) meta.id = msg.id;
    if (msg.event === 'error') {
      const message = typeof msg.data?.message === 'string' ? msg.data.message : 'Server error';
      this.#emit('error', new ServerError(message, { data: msg.data }), meta);
      this.#emit('*', msg.data, meta);
      return undefined;
    }
    this.#emit('*', msg.data, meta);
    if (!LIFECYCLE_EVENTS.has(msg.event)) this.#emit(msg.event, msg.data, meta);
    return undefined;
  }

  async #onConnected(data) {
    const ws = this.#ws;
    try {
      if (this.#codec.profile !== 'v2') this.#codec = this.#handshake ? await this.#handshake.finish(data) : plaintextCodec;
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
    const terminal =
      TERMINAL_CLOSE_CODES.has(code) || error instanceof EncryptionRequiredError || error?.code === CloseCode.ENCRYPTION_REQUIRED;
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
    if (ws && ws.readyState === OPEN) this.#transmit(ws, this.#codec.encode(message));
  }

  /**
   * Send a frame that is ready (a string) or being sealed (a promise), keeping call order: v2
   * sealing is asynchronous, but its sequence number was taken at call time, so frames must
   * leave in that order.
   */
  #transmit(ws, out) {
    if (typeof out === 'string' && this.#sendsPending === 0) {
      if (ws.readyState === OPEN) ws.send(out);
      return;
    }
    this.#sendsPending += 1;
    const queued = this.#sendQueue.then(() => out);
    this.#sendQueue = queued.then(
      (text) => {
        this.#sendsPending -= 1;
        if (this.#ws === ws && ws.readyState === OPEN) ws.send(text);
      },
      (cause) => {
        this.#sendsPending -= 1;
        // a frame that cannot be sealed leaves a gap in the sequence: the channel is over
        this.#emit('error', new SealcastError('sealing a frame failed', { cause }));
        if (this.#ws === ws) ws.close(CloseCode.ENCRYPTION_REQUIRED, 'sealing failed');
      },
    );
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
