// Types for sealcast-client.js — the sealcast JavaScript client (browsers and Node 20+).

/** HKDF `info` label of the v1 profile. */
export declare const V1_HKDF_INFO: 'ignis-ecdh-p256-aes-256-gcm-v1';

/** Close codes the server uses. */
export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  SERVER_SHUTDOWN: 1001;
  POLICY_VIOLATION: 1008;
  MESSAGE_TOO_BIG: 1009;
  AUTH_TIMEOUT: 4001;
  HEARTBEAT_TIMEOUT: 4002;
  AUTHENTICATION_FAILED: 4003;
  ENCRYPTION_REQUIRED: 4004;
}>;

// --- base64 ---------------------------------------------------------------------------------
export declare function bytesToB64(bytes: Uint8Array): string;
export declare function b64ToBytes(b64: string): Uint8Array;

// --- v1 crypto ------------------------------------------------------------------------------
/** A v1 record on the wire: base64 12-byte IV and base64 ciphertext with the 16-byte tag appended. */
export interface V1Record {
  iv: string;
  ct: string;
}
export type Bytes = string | Uint8Array;

export declare function generateKeyPair(): Promise<CryptoKeyPair>;
export declare function exportPublicKeyB64(publicKey: CryptoKey): Promise<string>;
export declare function importPublicKeyB64(publicKeyB64: string): Promise<CryptoKey>;
/** Import a raw 32-byte private scalar with its public key (test vectors, interop). */
export declare function importPrivateKey(scalar: Uint8Array, publicKeyB64: string): Promise<CryptoKey>;
/** ECDH(privateKey, peer) -> HKDF-SHA256(salt, V1_HKDF_INFO) -> AES-256-GCM key. Salt must be 32 bytes. */
export declare function deriveV1Key(privateKey: CryptoKey, peerPublicKeyB64: string, saltB64: string): Promise<CryptoKey>;
export declare function sealV1(key: CryptoKey, plaintext: Bytes, aad?: Bytes | null): Promise<V1Record>;
/** Rejects with DecryptError on any failure. */
export declare function openV1(key: CryptoKey, ivB64: string, ctB64: string, aad?: Bytes | null): Promise<string>;
/** Rejects with DecryptError on any failure. */
export declare function openV1Bytes(key: CryptoKey, ivB64: string, ctB64: string, aad?: Bytes | null): Promise<Uint8Array>;

// --- v2 crypto ------------------------------------------------------------------------------
/** The version token of encryption v2. */
export declare const V2_VERSION: 'sealcast-v2';
/** The extra token offered (after V2_VERSION) by a client that takes batched server→client records. */
export declare const V2_BATCH: 'sealcast-v2-batch';
/** Records per direction under one key before both sides rekey (2^20). */
export declare const V2_REKEY_INTERVAL: number;
/** Records per direction after which a v2 channel refuses to continue (2^32). */
export declare const V2_MAX_RECORDS: number;

/** The v2 transcript hash `th` (SHA-256; layout in SECURITY.md). */
export declare function v2TranscriptHash(t: {
  offered: string[];
  chosen: string;
  clientPub: Uint8Array;
  clientNonce: Uint8Array;
  serverPub: Uint8Array;
  serverNonce: Uint8Array;
  signed: boolean;
}): Promise<Uint8Array>;

/** A v2 record on the wire: `{"event":"encrypted","data":{"ct":"<b64 ciphertext ‖ tag>"}}` (no IV: it is implicit). */
export interface V2Record {
  event: 'encrypted';
  data: { ct: string };
}

/** A message opened from a v2 record. */
export interface V2Message {
  event: string;
  data: unknown;
  id?: string;
  encrypted: true;
}

/**
 * An established v2 channel. The client role (default) seals client→server and opens
 * server→client; `role: 'server'` the other way round (tests and tools). A record is one
 * sequence number, whether it carries one frame or (server→client, when V2_BATCH was offered)
 * a batch of frames.
 */
export declare class V2Codec {
  /**
   * `batches`: this side offered V2_BATCH, so the peer's records may be batches (default false:
   * a batch is a DecryptError). `c2sSeq`/`s2cSeq`: tests only.
   */
  constructor(
    c2s: Uint8Array,
    s2c: Uint8Array,
    opts?: { role?: 'client' | 'server'; batches?: boolean; c2sSeq?: number; s2cSeq?: number },
  );
  readonly encrypted: true;
  readonly profile: 'v2';
  /** True once a record failed or a limit was hit: the connection must close. */
  readonly failed: boolean;
  /** Whether the peer's records may be batches (this side offered V2_BATCH). */
  readonly batches: boolean;
  /** The next record numbers this side seals (`out`) and opens (`in`). */
  readonly seq: { out: number; in: number };
  /** Seal a message; the sequence number is taken synchronously, at call time. */
  encode(message: { event: string; data?: unknown }): Promise<string>;
  /**
   * Server role only (tests and tools): seal the messages as one batch record, plaintext
   * `JSON.stringify(messages)`; elements are not checked. Rejects with a TypeError for an empty
   * array or a client-role codec.
   */
  encodeBatch(messages: Array<{ event: string; data?: unknown }>): Promise<string>;
  /**
   * Open the peer's next record as one message. Rejects with DecryptError (also for a batch
   * record: use decodeAll) or ProtocolError; either is fatal and uses the record's number.
   */
  decode(frame: unknown): Promise<V2Message>;
  /**
   * Open the peer's next record into its messages, in order: one for a single frame, n for a
   * batch. Rejects like decode, and for a batch that was not offered, is empty or holds an
   * element that is not a message.
   */
  decodeAll(frame: unknown): Promise<V2Message[]>;
}

/** Import a pinned server signing key (base64 raw 65-byte P-256 point) for ECDSA verification. */
export declare function importServerSigningKey(publicKeyB64: string): Promise<CryptoKey>;

/**
 * The client's side of a v2 handshake (fixed key/nonce/offer for test vectors only). `offered`
 * defaults to `[V2_VERSION, V2_BATCH]`; the channel takes batched records when V2_BATCH is offered.
 */
export declare function startV2Handshake(opts?: {
  keyPair?: { privateKey: CryptoKey; publicKeyB64: string };
  nonce?: Uint8Array;
  offered?: string[];
}): Promise<{
  /** The first frame to send. */
  hello: string;
  /** Verify the server hello's `data`; resolves with the channel and the first record (this side's `fin`). */
  finish(data: unknown, opts?: { serverSigningKey?: string }): Promise<{ codec: V2Codec; finRecord: string }>;
}>;

/** The server's side of a v2 handshake, for tests and tools that play the server. */
export declare function acceptV2Handshake(
  data: unknown,
  opts?: { signingKey?: CryptoKey; keyPair?: { privateKey: CryptoKey; publicKeyB64: string }; nonce?: Uint8Array },
): Promise<{ hello: string; finish(firstRecord: unknown): Promise<V2Codec> }>;

// --- errors ---------------------------------------------------------------------------------
export declare class SealcastError extends Error {
  constructor(message: string, opts?: { code?: number; reason?: string; cause?: unknown; data?: unknown });
  /** The close code, when the error comes from a close. */
  readonly code?: number;
  readonly reason?: string;
  readonly data?: unknown;
}
export declare class ConnectionClosedError extends SealcastError {}
/** 4001 */
export declare class AuthTimeoutError extends SealcastError {}
/** 4002 */
export declare class HeartbeatTimeoutError extends SealcastError {}
/** 4003 — no automatic reconnect. */
export declare class AuthenticationError extends SealcastError {}
/** 4004, or a v2 handshake that failed (server unauthenticated, downgraded, bad fin/signature) — no automatic reconnect. */
export declare class EncryptionRequiredError extends SealcastError {}
/** 1001 */
export declare class ServerShutdownError extends SealcastError {}
/** 1008 */
export declare class PolicyViolationError extends SealcastError {}
/** 1009 */
export declare class MessageTooBigError extends SealcastError {}
/** An `encrypted` frame did not open; the message was dropped. In v2 the connection is also closed (code 4004, no reconnect). */
export declare class DecryptError extends SealcastError {}
/** The server's `error` event; `message` is the server's exact string. */
export declare class ServerError extends SealcastError {}
/** The server broke the protocol (e.g. plaintext on an encrypted connection); the frame was dropped. */
export declare class ProtocolError extends SealcastError {}

/** The typed error for a close code; `null` for 1000. */
export declare function errorForClose(code: number, reason?: string): SealcastError | null;

// --- reconnect ------------------------------------------------------------------------------
export interface ReconnectPolicy {
  /** Defaults to true. Never after 4003, 4004 or `close()`. */
  enabled: boolean;
  /** ms, defaults to 500 */
  minDelay: number;
  /** ms, defaults to 30000 */
  maxDelay: number;
  /** defaults to 2 */
  factor: number;
  /** 1/true = full jitter (uniform in [0, base]), 0/false = none; defaults to 1 */
  jitter: number | boolean;
  /** defaults to Infinity */
  maxAttempts: number;
}
export declare const DEFAULT_RECONNECT: Readonly<ReconnectPolicy>;
export declare function backoffDelay(attempt: number, policy?: Partial<ReconnectPolicy>, random?: () => number): number;

// --- client ---------------------------------------------------------------------------------
export type EncryptionProfile = 'v2' | 'v1' | 'none';
export type ClientState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

/** The server's `connected` data. */
export interface ConnectedInfo {
  id: string;
  userId: string;
  time: string;
  serverPublicKey?: string;
  salt?: string;
  [key: string]: unknown;
}

export interface SealcastClientOptions {
  /** e.g. `wss://host/ws` */
  url: string;
  /** A token, a whole `authenticate` payload (merged over `{type: 'token'}`), or a function giving either (called per connect). */
  token: string | Record<string, unknown> | (() => string | Record<string, unknown> | Promise<string | Record<string, unknown>>);
  /** Defaults to 'v2' when WebCrypto is available, else 'none'. v2 never falls back to v1. */
  encryption?: EncryptionProfile;
  /** v2 only: pin the server's ECDSA P-256 signing key (base64 raw 65-byte point); the handshake then requires a valid signature. Defaults to none. */
  serverSigningKey?: string;
  /** Fail (EncryptionRequiredError) if the server does not complete the handshake. Defaults to false. */
  requireEncryption?: boolean;
  /** ms between heartbeats, 0 disables. Defaults to 30000. */
  heartbeatInterval?: number;
  /** ms until `connected` must arrive. Defaults to 15000. */
  connectTimeout?: number;
  /** `false` disables. Defaults to DEFAULT_RECONNECT. */
  reconnect?: Partial<ReconnectPolicy> | boolean;
  /** WebSocket constructor (e.g. the `ws` package on Node < 22). Defaults to globalThis.WebSocket. */
  WebSocket?: new (url: string) => WebSocket;
}

export interface MessageMeta {
  event: string;
  /** True when the frame arrived as an `encrypted` record and was decrypted. */
  encrypted: boolean;
  id?: string;
}

export interface CloseInfo {
  code: number;
  reason: string;
  /** null for a normal (1000) close. */
  error: SealcastError | null;
  willReconnect: boolean;
}

export interface LifecycleEvents {
  open: (data: undefined, meta: MessageMeta) => void;
  connected: (data: ConnectedInfo, meta: MessageMeta) => void;
  close: (info: CloseInfo, meta: MessageMeta) => void;
  reconnecting: (info: { attempt: number; delay: number }, meta: MessageMeta) => void;
  error: (error: SealcastError, meta?: MessageMeta) => void;
  /** Every parsed frame as received, before decryption. */
  raw: (frame: { event: string; data?: unknown; id?: string }, meta: MessageMeta) => void;
  /** Every server event after decryption. */
  '*': (data: unknown, meta: MessageMeta) => void;
}

export declare class SealcastClient {
  constructor(options: SealcastClientOptions);
  readonly state: ClientState;
  /** True once the server's records are being decrypted. */
  readonly encrypted: boolean;
  /** The encryption in effect on this connection. */
  readonly profile: EncryptionProfile;
  readonly connectedInfo: ConnectedInfo | null;
  /** Rooms requested with join(); re-joined after a reconnect. */
  readonly rooms: string[];

  on<K extends keyof LifecycleEvents>(event: K, fn: LifecycleEvents[K]): () => void;
  on<T = any>(event: string, fn: (data: T, meta: MessageMeta) => void): () => void;
  once<K extends keyof LifecycleEvents>(event: K, fn: LifecycleEvents[K]): () => void;
  once<T = any>(event: string, fn: (data: T, meta: MessageMeta) => void): () => void;
  off(event: string, fn: (...args: any[]) => void): void;

  /** Resolves with the `connected` data; rejects with a typed SealcastError if the socket closes first. */
  connect(): Promise<ConnectedInfo>;
  join(rooms: string | string[]): void;
  leave(rooms: string | string[]): void;
  /** Throws when not connected or for system events (authenticate, join, leave, heartbeat, encrypted, connected). */
  send(event: string, data?: unknown): void;
  /** Close for good (no reconnect); resolves once closed. */
  close(code?: number, reason?: string): Promise<void>;
}
