// SealcastClient's protocol handling against an in-memory WebSocket: handshake, transparent
// decryption, dropped tampered records, typed close errors, reconnect, heartbeat. No network.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SealcastClient, generateKeyPair, exportPublicKeyB64, deriveV1Key, sealV1, bytesToB64, b64ToBytes,
  DecryptError, ProtocolError, ServerError, AuthTimeoutError, EncryptionRequiredError, ServerShutdownError,
  AuthenticationError, ConnectionClosedError,
} from '../../examples/js/sealcast-client.js';
import { until } from './support/rust.mjs';
import { FakeSocket } from './support/fake-socket.mjs';

const last = () => FakeSocket.all.at(-1);

/** Play the server's v1 handshake on `sock`: returns the key it seals with. */
async function acceptV1(sock, { connected = {} } = {}) {
  await until(() => sock.sent.length > 0, 'authenticate');
  const auth = sock.sent[0];
  assert.equal(auth.event, 'authenticate');
  const server = await generateKeyPair();
  const salt = bytesToB64(crypto.getRandomValues(new Uint8Array(32)));
  const key = await deriveV1Key(server.privateKey, auth.data.publicKey, salt);
  sock.push({
    event: 'connected',
    data: { id: 'c1', userId: auth.data.token, time: 't', serverPublicKey: await exportPublicKeyB64(server.publicKey), salt, ...connected },
  });
  const seal = async (event, data) => ({ event: 'encrypted', data: await sealV1(key, JSON.stringify({ event, data })) });
  return { key, auth, seal };
}

/** These are the v1 (and 'none') protocol tests; v2 has its own file (v2.test.mjs). */
function newClient(opts = {}) {
  return new SealcastClient({ url: 'ws://test/ws', token: 'alice', WebSocket: FakeSocket, heartbeatInterval: 0, encryption: 'v1', ...opts });
}

test('v1: authenticate carries a P-256 key; encrypted frames are delivered decrypted and in order', async () => {
  const client = newClient();
  const got = [];
  client.on('news', (data, meta) => got.push([data, meta]));
  const connecting = client.connect();
  const sock = last();
  const { auth, seal } = await acceptV1(sock);
  assert.deepEqual(Object.keys(auth.data).sort(), ['publicKey', 'token', 'type']);
  assert.equal(auth.data.type, 'token');
  assert.equal(auth.data.token, 'alice');
  const pub = b64ToBytes(auth.data.publicKey);
  assert.equal(pub.length, 65);
  assert.equal(pub[0], 4);
  const info = await connecting;
  assert.equal(info.userId, 'alice');
  assert.equal(client.encrypted, true);
  assert.equal(client.state, 'connected');
  for (let i = 0; i < 20; i++) sock.push(await seal('news', { n: i, text: `héllo ${i} ✓` }));
  await until(() => got.length === 20, '20 messages');
  assert.deepEqual(got.map(([d]) => d.n), [...Array(20).keys()]);
  assert.equal(got[3][0].text, 'héllo 3 ✓');
  assert.deepEqual(got[0][1], { event: 'news', encrypted: true });
  await client.close();
});

test('a tampered record is reported as DecryptError and never delivered; later records still are', async () => {
  const client = newClient();
  const got = [];
  const errors = [];
  client.on('news', (d) => got.push(d.text));
  client.on('*', (d, meta) => got.push(`*${meta.event}`));
  client.on('error', (e) => errors.push(e));
  const connecting = client.connect();
  const sock = last();
  const { seal } = await acceptV1(sock);
  await connecting;
  const bad = await seal('news', { text: 'forged' });
  const ct = b64ToBytes(bad.data.ct);
  ct[2] ^= 0x40;
  bad.data.ct = bytesToB64(ct);
  sock.push(bad);
  sock.push({ event: 'encrypted', data: { iv: 'AAAA', ct: 'AAAA' } });
  sock.push({ event: 'news', data: { text: 'injected plaintext' } });
  sock.push(await seal('news', { text: 'genuine' }));
  await until(() => got.includes('genuine'), 'the genuine record');
  assert.deepEqual(got, ['*news', 'genuine']);
  assert.equal(errors.length, 3);
  assert.ok(errors[0] instanceof DecryptError);
  assert.ok(errors[1] instanceof DecryptError);
  assert.ok(errors[2] instanceof ProtocolError, 'plaintext on an encrypted connection is refused');
  await client.close();
});

test("the server's error event becomes a ServerError with its exact message", async () => {
  const client = newClient({ encryption: 'none' });
  const errors = [];
  client.on('error', (e, meta) => errors.push([e, meta]));
  const connecting = client.connect();
  const sock = last();
  await until(() => sock.sent.length === 1, 'authenticate');
  assert.equal(sock.sent[0].data.publicKey, undefined, "encryption 'none' sends no key");
  sock.push({ event: 'connected', data: { id: 'c1', userId: 'alice', time: 't' } });
  await connecting;
  assert.equal(client.encrypted, false);
  sock.push({ event: 'error', data: { message: 'Invalid message format' } });
  await until(() => errors.length === 1, 'the error');
  assert.ok(errors[0][0] instanceof ServerError);
  assert.equal(errors[0][0].message, 'Invalid message format');
  assert.deepEqual(errors[0][1], { event: 'error', encrypted: false });
  await client.close();
});

test('closes before connected reject connect() with the typed error', async () => {
  for (const [code, Cls] of [[4001, AuthTimeoutError], [4003, AuthenticationError], [4004, EncryptionRequiredError], [1006, ConnectionClosedError]]) {
    const client = newClient({ reconnect: { minDelay: 1 } });
    const connecting = client.connect();
    const sock = last();
    await until(() => sock.sent.length === 1, 'authenticate');
    sock.serverClose(code, '');
    await assert.rejects(connecting, (e) => e instanceof Cls && e.code === code, `code ${code}`);
    assert.equal(client.state, 'closed');
  }
});

test('requireEncryption refuses a server that skips the handshake', async () => {
  const client = newClient({ requireEncryption: true });
  const connecting = client.connect();
  const sock = last();
  await until(() => sock.sent.length === 1, 'authenticate');
  sock.push({ event: 'connected', data: { id: 'c1', userId: 'alice', time: 't' } });
  await assert.rejects(connecting, EncryptionRequiredError);
});

test('after losing the connection the client backs off, reconnects, re-authenticates and rejoins', async () => {
  const client = newClient({ reconnect: { minDelay: 5, maxDelay: 20 } });
  const events = [];
  client.on('close', (c) => events.push(['close', c.code, c.error?.constructor, c.willReconnect]));
  client.on('reconnecting', (r) => events.push(['reconnecting', r.attempt]));
  const first = client.connect();
  const s1 = last();
  await acceptV1(s1);
  await first;
  client.join(['chat-a', 'chat-b']);
  client.leave('chat-b');
  assert.deepEqual(s1.sent.slice(1), [
    { event: 'join', data: { rooms: ['chat-a', 'chat-b'] } },
    { event: 'leave', data: { rooms: ['chat-b'] } },
  ]);
  s1.serverClose(1001, 'Server shutting down');
  await until(() => FakeSocket.all.at(-1) !== s1, 'a new socket');
  const s2 = last();
  await acceptV1(s2);
  await until(() => client.state === 'connected', 'reconnected');
  await until(() => s2.sent.length === 2, 'the rejoin');
  assert.deepEqual(s2.sent[1], { event: 'join', data: { rooms: ['chat-a'] } });
  assert.deepEqual(events, [['close', 1001, ServerShutdownError, true], ['reconnecting', 1]]);
  // an explicit close ends it for good
  await client.close();
  assert.equal(client.state, 'closed');
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(last(), s2, 'no reconnect after close()');
  assert.deepEqual(events.at(-1), ['close', 1000, undefined, false]);
});

test('no reconnect after 4003 or 4004 on an established connection', async () => {
  for (const code of [4003, 4004]) {
    const client = newClient({ reconnect: { minDelay: 1 } });
    const closes = [];
    client.on('close', (c) => closes.push(c));
    const p = client.connect();
    const sock = last();
    await acceptV1(sock);
    await p;
    sock.serverClose(code);
    await until(() => closes.length === 1, 'close');
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(closes[0].willReconnect, false);
    assert.equal(last(), sock, `no new socket after ${code}`);
  }
});

test('heartbeats are sent at the configured interval once connected', async () => {
  const client = newClient({ heartbeatInterval: 10, encryption: 'none' });
  const p = client.connect();
  const sock = last();
  await until(() => sock.sent.length === 1, 'authenticate');
  await new Promise((r) => setTimeout(r, 40));
  assert.deepEqual(sock.sentEvents(), ['authenticate'], 'no heartbeat before connected');
  sock.push({ event: 'connected', data: { id: 'c1', userId: 'alice', time: 't' } });
  await p;
  await until(() => sock.sentEvents().filter((e) => e === 'heartbeat').length >= 3, 'three heartbeats');
  assert.deepEqual(sock.sent.at(-1), { event: 'heartbeat' });
  await client.close();
  const n = sock.sent.length;
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(sock.sent.length, n, 'heartbeats stop after close');
});

test('send() refuses system events and sending while disconnected', async () => {
  const client = newClient();
  assert.throws(() => client.send('chat', {}), /not connected/);
  const p = client.connect();
  await acceptV1(last());
  await p;
  assert.throws(() => client.send('authenticate', {}), TypeError);
  assert.throws(() => client.send('heartbeat'), TypeError);
  client.send('chat', { room: 'chat-a', text: 'hi' });
  assert.deepEqual(last().sent.at(-1), { event: 'chat', data: { room: 'chat-a', text: 'hi' } });
  await client.close();
});
