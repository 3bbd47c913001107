// Encryption v2 in the JS client: the fixed cross-implementation vector (written by
// tests/crypto_v2.rs), and the client's protocol handling against an in-memory WebSocket with
// the test playing a v2 server: sealed authenticate/connected, ordering, pinning, downgrade,
// one negative test per record property, and batched server records (sealcast-v2-batch). No
// network. Run: node --test tests/js/v2.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  SealcastClient, V2Codec, V2_VERSION, V2_BATCH, V2_REKEY_INTERVAL, V2_MAX_RECORDS, startV2Handshake, acceptV2Handshake,
  importPrivateKey, bytesToB64, b64ToBytes, DecryptError, ProtocolError, EncryptionRequiredError, ServerError,
} from '../../examples/js/sealcast-client.js';
import { until } from './support/rust.mjs';
import { FakeSocket } from './support/fake-socket.mjs';

const VECTOR = fileURLToPath(new URL('../vectors/sealcast-v2.json', import.meta.url));
const hexToBytes = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
const b64url = (bytes) => bytesToB64(bytes).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const last = () => FakeSocket.all.at(-1);
const dataOf = (frameText) => JSON.parse(frameText).data;

async function signingPair() {
  const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const pub = bytesToB64(new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey)));
  return { privateKey: pair.privateKey, publicKeyB64: pub };
}

// ---- the cross-implementation vector -------------------------------------------------------

test('the Rust vector replays byte for byte: hello, fin record, sealed authenticate, opened server records', async () => {
  const v = JSON.parse(readFileSync(VECTOR, 'utf8'));
  const privateKey = await importPrivateKey(hexToBytes(v.client_private_key_hex), v.client_public_key_b64);
  const hs = await startV2Handshake({
    keyPair: { privateKey, publicKeyB64: v.client_public_key_b64 },
    nonce: b64ToBytes(v.client_nonce_b64),
    offered: v.offered,
  });
  assert.equal(hs.hello, v.client_hello, 'client hello');
  const { codec, finRecord } = await hs.finish(dataOf(v.server_hello), { serverSigningKey: v.server_signing_public_key_b64 });
  assert.equal(finRecord, v.client_records[0], 'the fin record (c2s #0)');
  for (const [i, text] of v.client_plaintexts.entries()) {
    assert.equal(await codec.encode(JSON.parse(text)), v.client_records[i + 1], `client record ${i + 1}`);
  }
  for (const [i, rec] of v.server_records.entries()) {
    const msg = await codec.decode(JSON.parse(rec));
    const want = JSON.parse(v.server_plaintexts[i]);
    assert.deepEqual([msg.event, msg.data, msg.encrypted], [want.event, want.data, true], `server record ${i}`);
  }
});

test('the JS server side reproduces the Rust server fin and records from the same inputs', async () => {
  const v = JSON.parse(readFileSync(VECTOR, 'utf8'));
  const serverHello = dataOf(v.server_hello);
  const ephemeral = await importPrivateKey(hexToBytes(v.server_ephemeral_private_key_hex), serverHello.pub);
  const sigPub = b64ToBytes(v.server_signing_public_key_b64);
  const signingKey = await crypto.subtle.importKey('jwk', {
    kty: 'EC', crv: 'P-256', d: b64url(hexToBytes(v.server_signing_private_key_hex)),
    x: b64url(sigPub.subarray(1, 33)), y: b64url(sigPub.subarray(33)),
  }, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
  const server = await acceptV2Handshake(dataOf(v.client_hello), {
    signingKey, keyPair: { privateKey: ephemeral, publicKeyB64: serverHello.pub }, nonce: b64ToBytes(v.server_nonce_b64),
  });
  const mine = dataOf(server.hello);
  // ECDSA in WebCrypto is randomized, so only the signature differs (and verifies, below).
  assert.deepEqual({ ...mine, sig: undefined }, { ...serverHello, sig: undefined });
  const codec = await server.finish(JSON.parse(v.client_records[0]));
  for (const [i, text] of v.server_plaintexts.entries()) {
    assert.equal(await codec.encode(JSON.parse(text)), v.server_records[i], `server record ${i}`);
  }
  // The randomized signature still verifies for a pinning client.
  const privateKey = await importPrivateKey(hexToBytes(v.client_private_key_hex), v.client_public_key_b64);
  const hs = await startV2Handshake({ keyPair: { privateKey, publicKeyB64: v.client_public_key_b64 }, nonce: b64ToBytes(v.client_nonce_b64), offered: v.offered });
  await hs.finish(mine, { serverSigningKey: v.server_signing_public_key_b64 });
});

// ---- the client against a scripted v2 server -----------------------------------------------

function newClient(opts = {}) {
  return new SealcastClient({ url: 'ws://test/ws', token: 'alice', WebSocket: FakeSocket, heartbeatInterval: 0, reconnect: { minDelay: 1 }, ...opts });
}

/**
 * Play a v2 server on the last socket: answer the hello, check the fin, open `authenticate`,
 * send a sealed `connected`. Returns the server's codec and helpers.
 */
async function acceptV2(sock, { signingKey, connected = true } = {}) {
  await until(() => sock.sent.length > 0, 'the hello');
  const hello = sock.sent[0];
  assert.equal(hello.event, 'handshake', 'the hello is the first frame');
  assert.deepEqual(Object.keys(hello.data).sort(), ['nonce', 'pub', 'v']);
  assert.deepEqual(hello.data.v, [V2_VERSION, V2_BATCH]);
  const server = await acceptV2Handshake(hello.data, { signingKey });
  sock.push(server.hello);
  await until(() => sock.sent.length >= 3, 'fin and authenticate');
  const codec = await server.finish(sock.sent[1]);
  const auth = await codec.decode(sock.sent[2]);
  assert.equal(auth.event, 'authenticate');
  assert.deepEqual(auth.data, { type: 'token', token: 'alice' });
  let opened = 3;
  const seal = async (event, data) => JSON.parse(await codec.encode({ event, data }));
  const sealBatch = async (messages) => JSON.parse(await codec.encodeBatch(messages));
  /** Opens everything the client sent since the last call. */
  const received = async () => {
    const out = [];
    while (opened < sock.sent.length) out.push(await codec.decode(sock.sent[opened++]));
    return out;
  };
  if (connected) sock.push(await seal('connected', { id: 'c1', userId: 'alice', time: 't' }));
  return { codec, seal, sealBatch, received };
}

/** A connected v2 client with recorders. */
async function connectedClient(opts = {}) {
  const client = newClient(opts);
  const rec = { news: [], errors: [], closes: [] };
  client.on('news', (d, meta) => rec.news.push([d, meta]));
  client.on('error', (e) => rec.errors.push(e));
  client.on('close', (c) => rec.closes.push(c));
  const connecting = client.connect();
  const sock = last();
  const server = await acceptV2(sock, opts);
  const info = await connecting;
  return { client, sock, server, rec, info };
}

test('v2 is the default: hello first, authenticate and everything after it sealed both ways', async () => {
  const { client, sock, server, rec, info } = await connectedClient();
  assert.equal(info.userId, 'alice');
  assert.equal(client.profile, 'v2');
  assert.equal(client.encrypted, true);
  assert.equal(info.serverPublicKey, undefined, 'no v1 fields');
  for (let i = 0; i < 10; i++) sock.push(await server.seal('news', { n: i, text: `héllo ${i} ✓` }));
  await until(() => rec.news.length === 10, '10 messages');
  assert.deepEqual(rec.news.map(([d]) => d.n), [...Array(10).keys()]);
  assert.deepEqual(rec.news[0][1], { event: 'news', encrypted: true });
  client.join('chat-a');
  client.send('chat', { text: 'hi' });
  await until(() => sock.sent.length === 5, 'two sealed frames');
  assert.ok(sock.sent.every((f, i) => i === 0 || (f.event === 'encrypted' && Object.keys(f.data).join() === 'ct')), 'all sealed, no iv');
  assert.deepEqual((await server.received()).map((m) => [m.event, m.data]), [['join', { rooms: ['chat-a'] }], ['chat', { text: 'hi' }]]);
  assert.deepEqual(rec.errors, []);
  await client.close();
});

test('concurrent sends keep their order: sequence numbers are taken before encryption', async () => {
  const { client, sock, server } = await connectedClient();
  const big = 'x'.repeat(200_000); // a slow encryption between fast ones
  for (let i = 0; i < 50; i++) client.send('chat', { i, pad: i % 7 === 3 ? big : '' });
  await until(() => sock.sent.length === 3 + 50, '50 records');
  const got = await server.received();
  assert.deepEqual(got.map((m) => m.data.i), [...Array(50).keys()]);
  await client.close();
});

test('close() flushes frames still being sealed', async () => {
  const { client, sock, server } = await connectedClient();
  client.send('chat', { last: true });
  await client.close();
  const got = await server.received();
  assert.deepEqual(got.map((m) => m.data), [{ last: true }]);
  assert.equal(sock.readyState, 3);
});

/** Every record failure: DecryptError, close 4004, no delivery, no reconnect. */
async function expectFatal(tamper, { Err = DecryptError } = {}) {
  const { client, sock, server, rec } = await connectedClient();
  const socketsBefore = FakeSocket.all.length;
  await tamper({ sock, server });
  await until(() => rec.closes.length === 1, 'the close');
  assert.deepEqual(rec.news, [], 'nothing delivered');
  assert.ok(rec.errors[0] instanceof Err, `got ${rec.errors[0]?.name}: ${rec.errors[0]?.message}`);
  assert.equal(rec.closes[0].code, 4004);
  assert.equal(rec.closes[0].willReconnect, false);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(FakeSocket.all.length, socketsBefore, 'no reconnect');
  assert.equal(client.state, 'closed');
}

test('a bit flip in a record closes the connection (4004)', async () => {
  await expectFatal(async ({ sock, server }) => {
    const bad = await server.seal('news', { text: 'forged' });
    const ct = b64ToBytes(bad.data.ct);
    ct[ct.length - 1] ^= 1;
    bad.data.ct = bytesToB64(ct);
    sock.push(bad);
    sock.push(await server.seal('news', { text: 'after' }));
  });
});

test('a replayed record closes the connection', async () => {
  const { client, sock, server, rec } = await connectedClient();
  const r = await server.seal('news', { n: 1 });
  sock.push(r);
  sock.push(r);
  await until(() => rec.closes.length === 1, 'the close');
  assert.deepEqual(rec.news.map(([d]) => d.n), [1], 'the original once, the replay never');
  assert.ok(rec.errors[0] instanceof DecryptError);
  assert.equal(rec.closes[0].code, 4004);
  assert.equal(client.state, 'closed');
});

test('reordered records close the connection', async () => {
  await expectFatal(async ({ sock, server }) => {
    const a = await server.seal('news', { n: 1 });
    const b = await server.seal('news', { n: 2 });
    sock.push(b);
    sock.push(a);
  });
});

test('a dropped record closes the connection', async () => {
  await expectFatal(async ({ sock, server }) => {
    await server.seal('news', { n: 1 }); // never delivered
    sock.push(await server.seal('news', { n: 2 }));
  });
});

test("a reflected record (the client's own, sent back) closes the connection", async () => {
  await expectFatal(async ({ sock }) => {
    sock.push(sock.sent[2]); // the client's sealed authenticate
  });
});

test('a plaintext frame after the handshake closes the connection', async () => {
  await expectFatal(async ({ sock }) => {
    sock.push({ event: 'news', data: { text: 'injected' } });
  }, { Err: ProtocolError });
});

test('a v1-shaped record (with iv) on a v2 connection closes it', async () => {
  await expectFatal(async ({ sock, server }) => {
    const r = await server.seal('news', {});
    r.data.iv = 'AAAAAAAAAAAAAAAA';
    sock.push(r);
  });
});

test('pinning: the right key connects, a wrong key or a missing signature fails (no reconnect)', async () => {
  const good = await signingPair();
  const other = await signingPair();
  const ok = await connectedClient({ serverSigningKey: good.publicKeyB64, signingKey: good.privateKey });
  assert.equal(ok.client.profile, 'v2');
  await ok.client.close();
  for (const [what, signingKey] of [['wrong key', other.privateKey], ['unsigned', undefined]]) {
    const client = newClient({ serverSigningKey: good.publicKeyB64 });
    const errors = [];
    client.on('error', (e) => errors.push(e));
    const connecting = client.connect();
    const sock = last();
    await until(() => sock.sent.length === 1, 'hello');
    const server = await acceptV2Handshake(sock.sent[0].data, { signingKey });
    sock.push(server.hello);
    await assert.rejects(connecting, (e) => e instanceof EncryptionRequiredError && e.code === 4004, what);
    assert.equal(sock.sent.length, 1, `${what}: nothing sent after the hello (no authenticate, no token)`);
    assert.match(errors[0].message, /signature|not signed/, what);
    assert.equal(client.state, 'closed');
  }
});

test('serverSigningKey is validated up front and needs v2', () => {
  assert.throws(() => newClient({ serverSigningKey: 'nope' }));
  assert.throws(() => newClient({ encryption: 'v1', serverSigningKey: bytesToB64(new Uint8Array(65).fill(4)) }), TypeError);
});

test('downgrade: a server that answers the hello with anything but a v2 handshake is refused', async () => {
  const answers = [
    { event: 'error', data: { message: 'Not authenticated' } },
    { event: 'connected', data: { id: 'c1', userId: 'alice', time: 't' } },
    { event: 'handshake', data: { v: 'v1' } },
  ];
  for (const answer of answers) {
    const client = newClient();
    const errors = [];
    client.on('error', (e) => errors.push(e));
    const connecting = client.connect();
    const sock = last();
    await until(() => sock.sent.length === 1, 'hello');
    sock.push(answer);
    await assert.rejects(connecting, EncryptionRequiredError, JSON.stringify(answer));
    assert.equal(sock.sent.length, 1, 'the token never left in the clear');
    if (answer.event === 'error') assert.ok(errors.some((e) => e instanceof ServerError));
  }
});

test('downgrade: a trimmed offer (the server saw other versions) fails the fin check', async () => {
  const hs = await startV2Handshake({ offered: [V2_VERSION, 'v1'] });
  const data = dataOf(hs.hello);
  const server = await acceptV2Handshake({ ...data, v: [V2_VERSION] });
  await assert.rejects(hs.finish(dataOf(server.hello)), /fin/);
});

test('bad server keys are refused: off-curve, compressed, identity', async () => {
  const hs = await startV2Handshake();
  const server = await acceptV2Handshake(dataOf(hs.hello));
  const good = dataOf(server.hello);
  const raw = b64ToBytes(good.pub);
  const offCurve = raw.slice();
  offCurve[64] ^= 1;
  const compressed = Uint8Array.of(2 | (raw[64] & 1), ...raw.subarray(1, 33));
  const identity = new Uint8Array(65);
  identity[0] = 4;
  for (const [what, key] of [['off-curve', offCurve], ['compressed', compressed], ['identity', identity]]) {
    await assert.rejects(hs.finish({ ...good, pub: bytesToB64(key) }), undefined, what);
  }
  await assert.rejects(hs.finish({ ...good, nonce: good.nonce.replace(/=$/, '') }), /nonce/);
  await assert.rejects(hs.finish({ ...good, fin: bytesToB64(new Uint8Array(32)) }), /fin/);
});

test('rekeying at 2^20 agrees on both sides; the hard limit at 2^32 refuses to seal', async () => {
  const secret = () => new Uint8Array(32).fill(7);
  const start = V2_REKEY_INTERVAL - 2;
  const client = new V2Codec(secret(), secret(), { c2sSeq: start });
  const server = new V2Codec(secret(), secret(), { role: 'server', c2sSeq: start });
  for (let i = 0; i < 5; i++) {
    const rec = JSON.parse(await client.encode({ event: 'n', data: i }));
    assert.equal((await server.decode(rec)).data, i);
  }
  assert.deepEqual(client.seq, { out: V2_REKEY_INTERVAL + 3, in: 0 });
  // A peer that did not rekey refuses the first record of the new epoch.
  const stale = new V2Codec(secret(), secret(), { role: 'server', c2sSeq: V2_REKEY_INTERVAL + 3 });
  const next = JSON.parse(await client.encode({ event: 'n' }));
  await assert.rejects(stale.decode(next), DecryptError);

  const end = new V2Codec(secret(), secret(), { c2sSeq: V2_MAX_RECORDS - 1 });
  const peer = new V2Codec(secret(), secret(), { role: 'server', c2sSeq: V2_MAX_RECORDS - 1 });
  assert.equal((await peer.decode(JSON.parse(await end.encode({ event: 'last' })))).event, 'last');
  await assert.rejects(end.encode({ event: 'over' }), DecryptError);
  assert.equal(end.failed, true);
});

// ---- batched server records (sealcast-v2-batch) --------------------------------------------

/** A client and a server codec from a real handshake; `offered` as startV2Handshake takes it. */
async function codecPair(offered) {
  const hs = await startV2Handshake(offered === undefined ? {} : { offered });
  const hello = dataOf(hs.hello);
  const server = await acceptV2Handshake(hello);
  const { codec: client, finRecord } = await hs.finish(dataOf(server.hello));
  return { client, server: await server.finish(JSON.parse(finRecord)), hello };
}

const rec = async (sealing) => JSON.parse(await sealing);

test('the default hello offers sealcast-v2 and sealcast-v2-batch; the server side accepts it and the channel takes batches', async () => {
  assert.equal(V2_BATCH, 'sealcast-v2-batch');
  const { client, server, hello } = await codecPair();
  assert.deepEqual(hello.v, ['sealcast-v2', 'sealcast-v2-batch']);
  assert.equal(client.batches, true);
  // The channel works both ways after the handshake over the two-token offer.
  assert.equal((await server.decode(await rec(client.encode({ event: 'ping', data: 1 })))).data, 1);
  assert.equal((await client.decode(await rec(server.encode({ event: 'pong', data: 2 })))).data, 2);
  // An explicit offer is used as given.
  const only = await codecPair([V2_VERSION]);
  assert.deepEqual(only.hello.v, [V2_VERSION]);
  assert.equal(only.client.batches, false);
  assert.equal(new V2Codec(new Uint8Array(32), new Uint8Array(32)).batches, false, 'direct construction: no batches');
});

test('decodeAll opens a batch record into its messages in order; the record uses one sequence number', async () => {
  const { client, server } = await codecPair();
  const m = [
    { event: 'chat', data: { n: 1, text: 'héllo ✓' } },
    { event: 'news', data: [1, 2] },
    { event: 'chat', data: { n: 3 }, id: 'm3' },
  ];
  const batch = await rec(server.encodeBatch(m));
  assert.deepEqual(Object.keys(batch.data), ['ct'], 'a batch looks like any record on the wire');
  const got = await client.decodeAll(batch);
  assert.deepEqual(got, m.map((x) => ({ event: x.event, data: x.data, id: x.id, encrypted: true })));
  assert.deepEqual(client.seq, { out: 1, in: 1 }, 'the fin went out; one record came in');
  // The next single record still opens: both sides advanced the counter once.
  assert.deepEqual(await client.decodeAll(await rec(server.encode({ event: 'after', data: 4 }))), [
    { event: 'after', data: 4, id: undefined, encrypted: true },
  ]);
  assert.equal((await client.decode(await rec(server.encode({ event: 'single' })))).event, 'single');
  assert.deepEqual(client.seq.in, 3);
  assert.equal(client.failed, false);
});

test('decodeAll refuses an empty batch or a batch with an element that is not a message, and fails the channel', async () => {
  const cases = [
    // encodeBatch refuses an empty list; encode seals JSON.stringify(message), so this is `[]`.
    ['empty', (s) => s.encode([])],
    ['a number', (s) => s.encodeBatch([{ event: 'chat' }, 5])],
    ['a string', (s) => s.encodeBatch([{ event: 'chat' }, 'chat'])],
    ['null', (s) => s.encodeBatch([{ event: 'chat' }, null])],
    ['a nested batch', (s) => s.encodeBatch([{ event: 'chat' }, [{ event: 'chat' }]])],
    ['no event', (s) => s.encodeBatch([{ data: 1 }, { event: 'chat' }])],
    ['a non-string event', (s) => s.encodeBatch([{ event: 'chat' }, { event: 7 }])],
    ['an encrypted element', (s) => s.encodeBatch([{ event: 'chat' }, { event: 'encrypted', data: { ct: 'AAAA' } }])],
  ];
  for (const [what, make] of cases) {
    const { client, server } = await codecPair();
    await assert.rejects(client.decodeAll(await rec(make(server))), DecryptError, what);
    assert.equal(client.failed, true, `${what}: the channel is failed`);
    await assert.rejects(client.decodeAll(await rec(server.encode({ event: 'chat' }))), DecryptError, `${what}: nothing opens after`);
  }
});

test('a channel that did not offer sealcast-v2-batch refuses a batch record', async () => {
  const { client, server, hello } = await codecPair([V2_VERSION]);
  assert.deepEqual(hello.v, [V2_VERSION]);
  assert.equal((await client.decodeAll(await rec(server.encode({ event: 'one' }))))[0].event, 'one');
  const batch = await rec(server.encodeBatch([{ event: 'a' }, { event: 'b' }]));
  await assert.rejects(client.decodeAll(batch), (e) => e instanceof DecryptError && /sealcast-v2-batch/.test(e.message));
  assert.equal(client.failed, true);
  // The same through a codec built directly (batches defaults to false).
  const secret = () => new Uint8Array(32).fill(9);
  const direct = new V2Codec(secret(), secret());
  const peer = new V2Codec(secret(), secret(), { role: 'server' });
  await assert.rejects(direct.decodeAll(await rec(peer.encodeBatch([{ event: 'a' }]))), DecryptError);
});

test('decode refuses a batch record (use decodeAll); its sequence number is used and the channel fails', async () => {
  const { client, server } = await codecPair();
  const batch = await rec(server.encodeBatch([{ event: 'a' }, { event: 'b' }]));
  await assert.rejects(client.decode(batch), (e) => e instanceof DecryptError && /decodeAll/.test(e.message));
  assert.equal(client.seq.in, 1);
  assert.equal(client.failed, true);
  await assert.rejects(client.decode(await rec(server.encode({ event: 'c' }))), DecryptError);
});

test('encodeBatch refuses an empty or non-array list and the client role, without taking a sequence number', async () => {
  const { client, server } = await codecPair();
  await assert.rejects(server.encodeBatch([]), TypeError);
  await assert.rejects(server.encodeBatch({ event: 'a' }), TypeError);
  await assert.rejects(client.encodeBatch([{ event: 'a' }]), TypeError);
  assert.deepEqual(server.seq, { out: 0, in: 1 });
  assert.deepEqual(client.seq, { out: 1, in: 0 });
  // A one-element batch is sealed (the client accepts one or more).
  assert.deepEqual((await client.decodeAll(await rec(server.encodeBatch([{ event: 'solo', data: 1 }])))).map((x) => x.event), ['solo']);
});

test('the client delivers each message of a batch record as its own event, in order', async () => {
  const { client, sock, server, rec: got } = await connectedClient();
  const chats = [];
  const all = [];
  client.on('chat', (d, meta) => chats.push([d, meta]));
  client.on('*', (d, meta) => all.push(meta.event));
  sock.push(await server.sealBatch([
    { event: 'chat', data: { n: 1 } },
    { event: 'chat', data: { n: 2 }, id: 'm2' },
    { event: 'news', data: { n: 'x' } },
    { event: 'error', data: { message: 'Rate limited' } },
    { event: 'close', data: {} }, // a lifecycle name: seen by '*' only
    { event: 'chat', data: { n: 3 } },
  ]));
  sock.push(await server.seal('chat', { n: 4 }));
  await until(() => chats.length === 4, 'four chats');
  assert.deepEqual(chats.map(([d]) => d.n), [1, 2, 3, 4]);
  assert.deepEqual(chats[0][1], { event: 'chat', encrypted: true });
  assert.deepEqual(chats[1][1], { event: 'chat', encrypted: true, id: 'm2' });
  assert.deepEqual(all, ['chat', 'chat', 'news', 'error', 'close', 'chat', 'chat']);
  assert.deepEqual(got.news.map(([d]) => d.n), ['x']);
  assert.equal(got.errors.length, 1);
  assert.ok(got.errors[0] instanceof ServerError);
  assert.equal(got.errors[0].message, 'Rate limited');
  assert.deepEqual(got.closes, [], 'a server "close" event is not the lifecycle event');
  assert.equal(client.state, 'connected');
  await client.close();
});

test('a batch record can carry the sealed connected and the first events', async () => {
  const client = newClient();
  const chats = [];
  client.on('chat', (d) => chats.push(d.n));
  const connecting = client.connect();
  const sock = last();
  const server = await acceptV2(sock, { connected: false });
  sock.push(await server.sealBatch([
    { event: 'connected', data: { id: 'c1', userId: 'alice', time: 't' } },
    { event: 'chat', data: { n: 1 } },
    { event: 'chat', data: { n: 2 } },
  ]));
  const info = await connecting;
  assert.equal(info.userId, 'alice');
  await until(() => chats.length === 2, 'two chats');
  assert.deepEqual(chats, [1, 2]);
  assert.equal(client.state, 'connected');
  await client.close();
});

test('a malformed batch record closes the connection (4004) and delivers none of it', async () => {
  await expectFatal(async ({ sock, server }) => {
    sock.push(await server.sealBatch([{ event: 'news', data: { n: 1 } }, { event: 'encrypted', data: {} }]));
    sock.push(await server.seal('news', { n: 2 }));
  });
});
