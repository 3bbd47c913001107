// The JS client against the real Rust server (examples/chat.rs, built by this test).
// Run: node --test tests/js/live.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import {
  SealcastClient, AuthenticationError, SealcastError, ServerError, ServerShutdownError, EncryptionRequiredError,
} from '../../examples/js/sealcast-client.js';
import { startChatServer, until } from './support/rust.mjs';

let server;
before(async () => {
  server = await startChatServer();
});
after(async () => {
  await server?.stop();
});

/** A client that records what it received: decoded events and raw frames. */
function recordingClient(token, opts = {}) {
  const client = new SealcastClient({ url: server.wsUrl, token, WebSocket, reconnect: false, ...opts });
  const rec = { chats: [], raw: [], errors: [], closes: [] };
  client.on('chat', (data, meta) => rec.chats.push({ data, meta }));
  client.on('raw', (frame) => rec.raw.push(frame));
  client.on('error', (err) => rec.errors.push(err));
  client.on('close', (info) => rec.closes.push(info));
  return { client, rec, texts: () => rec.chats.map((c) => c.data.text) };
}

const ROOM = 'chat-test';

/** Send probes from `from` until `to` sees one, so both are known to be in the room. */
async function handshakeRoom(from, to, tag) {
  let n = 0;
  const seen = () => to.texts().some((t) => t?.startsWith(`probe-${tag}-`));
  while (!seen()) {
    assert.ok(n < 100, `probe ${tag} never arrived`);
    from.client.send('chat', { room: ROOM, text: `probe-${tag}-${n++}` });
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('an encrypted and a plaintext client chat in a room; each message arrives exactly once', async () => {
  const alice = recordingClient('alice', { encryption: 'v1' });
  const bob = recordingClient('bob', { encryption: 'none' });
  try {
    const a = await alice.client.connect();
    const b = await bob.client.connect();
    assert.equal(a.userId, 'alice');
    assert.equal(b.userId, 'bob');
    assert.ok(a.serverPublicKey && a.salt, 'encrypted client got the server key and salt');
    assert.equal(b.serverPublicKey, undefined, 'plaintext client got no server key');
    assert.equal(alice.client.encrypted, true);
    assert.equal(bob.client.encrypted, false);

    alice.client.join(ROOM);
    bob.client.join(ROOM);
    await handshakeRoom(alice, bob, 'a');
    await handshakeRoom(bob, alice, 'b');

    const rawBefore = alice.rec.raw.length;
    alice.client.send('chat', { room: ROOM, text: 'hello from alice ✓' });
    bob.client.send('chat', { room: ROOM, text: 'hello from bob 🔥' });
    alice.client.send('chat', { room: ROOM, text: 'end' });
    await until(() => alice.texts().includes('end') && bob.texts().includes('end'), 'the end marker');
    await until(() => alice.texts().includes('hello from bob 🔥') && bob.texts().includes('hello from bob 🔥'), "bob's message");

    for (const [name, who] of [['alice', alice], ['bob', bob]]) {
      const count = (t) => who.texts().filter((x) => x === t).length;
      assert.equal(count('hello from alice ✓'), 1, `${name} got alice's message once`);
      assert.equal(count('hello from bob 🔥'), 1, `${name} got bob's message once`);
      const fromAlice = who.rec.chats.find((c) => c.data.text === 'hello from alice ✓');
      assert.equal(fromAlice.data.from, 'alice');
      assert.equal(fromAlice.data.room, ROOM);
      assert.ok(fromAlice.data.time, 'chat carries a time');
    }
    // alice's chats were sealed on the wire and decrypted by the client
    assert.ok(alice.rec.chats.every((c) => c.meta.encrypted === true));
    const aliceRaw = alice.rec.raw.slice(rawBefore);
    assert.ok(aliceRaw.length >= 3);
    assert.ok(aliceRaw.every((f) => f.event === 'encrypted' && f.data.iv && f.data.ct), 'alice saw only encrypted frames');
    assert.ok(!JSON.stringify(alice.rec.raw).includes('hello from'), 'no plaintext chat reached alice');
    // bob's arrived in the clear
    assert.ok(bob.rec.chats.every((c) => c.meta.encrypted === false));
    assert.ok(bob.rec.raw.some((f) => f.event === 'chat' && f.data.text === 'hello from alice ✓'));
    assert.deepEqual([...alice.rec.errors, ...bob.rec.errors], [], 'no client errors');
  } finally {
    await alice.client.close();
    await bob.client.close();
  }
  assert.equal(alice.rec.closes.at(-1).error, null, 'an explicit close is not an error');
  assert.equal(alice.rec.closes.at(-1).willReconnect, false);
});

test('v2 (the default, server key pinned), v1 and plaintext clients chat in one room', async () => {
  assert.ok(server.signingKey, 'the chat server printed its v2 signing key');
  const vera = recordingClient('vera', { serverSigningKey: server.signingKey });
  const olga = recordingClient('olga', { encryption: 'v1' });
  const pete = recordingClient('pete', { encryption: 'none' });
  try {
    const v = await vera.client.connect();
    await olga.client.connect();
    await pete.client.connect();
    assert.equal(v.userId, 'vera');
    assert.equal(v.serverPublicKey, undefined, 'v2 needs no v1 fields');
    assert.deepEqual([vera.client.profile, olga.client.profile, pete.client.profile], ['v2', 'v1', 'none']);
    // Everything vera received after her hello was a record with nothing but `ct`.
    assert.equal(vera.rec.raw[0].event, 'handshake');
    assert.ok(vera.rec.raw.slice(1).every((f) => f.event === 'encrypted' && Object.keys(f.data).join() === 'ct'));

    for (const c of [vera, olga, pete]) c.client.join(ROOM);
    await handshakeRoom(vera, pete, 'v');
    await handshakeRoom(olga, vera, 'o');
    await handshakeRoom(pete, olga, 'p');
    vera.client.send('chat', { room: ROOM, text: 'from vera (v2) ✓' });
    olga.client.send('chat', { room: ROOM, text: 'from olga (v1)' });
    pete.client.send('chat', { room: ROOM, text: 'from pete (plain)' });
    const all = ['from vera (v2) ✓', 'from olga (v1)', 'from pete (plain)'];
    for (const c of [vera, olga, pete]) await until(() => all.every((t) => c.texts().includes(t)), 'all three messages');
    for (const [who, c] of [['vera', vera], ['olga', olga], ['pete', pete]]) {
      for (const t of all) assert.equal(c.texts().filter((x) => x === t).length, 1, `${who} got "${t}" once`);
      assert.deepEqual(c.rec.errors, [], `${who}: no errors`);
    }
    assert.ok(vera.rec.chats.every((c) => c.meta.encrypted));
    assert.ok(!JSON.stringify(vera.rec.raw).includes('from '), 'no plaintext reached vera');
  } finally {
    await vera.client.close();
    await olga.client.close();
    await pete.client.close();
  }
});

test('v2 with a wrong pinned server key fails (EncryptionRequiredError) and does not reconnect', async () => {
  const other = 'BB/REONrWpYSCyhMr560Jva5lMX3BR2LjeKdwzHTTUJVTT9D670UgpS2ajp3nd6rUZc76if0IAXSadtiQ7AQ/kw=';
  const client = new SealcastClient({ url: server.wsUrl, token: 'mallory', WebSocket, serverSigningKey: other, reconnect: { minDelay: 10 } });
  const reconnecting = [];
  client.on('reconnecting', (r) => reconnecting.push(r));
  await assert.rejects(client.connect(), (e) => e instanceof EncryptionRequiredError && /signature/.test(e.message));
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(reconnecting, []);
  assert.equal(client.state, 'closed');
});

test('the server completes the closing handshake: a client close(1000) ends cleanly with 1000', async () => {
  const frank = recordingClient('frank');
  await frank.client.connect();
  await frank.client.close(1000, 'bye');
  assert.equal(frank.rec.closes.length, 1);
  assert.equal(frank.rec.closes[0].code, 1000, 'the server echoed the close frame (1006 = connection dropped)');
});

test('a client outside the room does not receive its messages', async () => {
  const carol = recordingClient('carol');
  const dave = recordingClient('dave');
  try {
    await carol.client.connect();
    await dave.client.connect();
    carol.client.join(ROOM);
    dave.client.join('chat-elsewhere');
    dave.client.join('secret'); // not allowed by the validator: ignored
    await handshakeRoom(carol, carol, 'c');
    carol.client.send('chat', { room: ROOM, text: 'only for chat-test' });
    dave.client.send('chat', { room: 'secret', text: 'nobody may hear this' });
    dave.client.send('chat', { room: 'chat-elsewhere', text: 'dave alone' });
    await until(() => carol.texts().includes('only for chat-test') && dave.texts().includes('dave alone'), 'own messages');
    assert.ok(!dave.texts().some((t) => t.startsWith('probe-') || t === 'only for chat-test'));
    assert.ok(!dave.texts().includes('nobody may hear this'));
    assert.ok(!carol.texts().includes('dave alone'));
  } finally {
    await carol.client.close();
    await dave.client.close();
  }
});

test('a rejected token fails connect() with AuthenticationError (4003) and does not reconnect', async () => {
  const client = new SealcastClient({ url: server.wsUrl, token: 'bad token!', WebSocket, reconnect: { minDelay: 10 } });
  const reconnecting = [];
  const errors = [];
  client.on('reconnecting', (r) => reconnecting.push(r));
  client.on('error', (e) => errors.push(e));
  await assert.rejects(client.connect(), (err) => {
    assert.ok(err instanceof AuthenticationError, `got ${err?.name}: ${err?.message}`);
    assert.ok(err instanceof SealcastError);
    assert.equal(err.code, 4003);
    return true;
  });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(client.state, 'closed');
  assert.deepEqual(reconnecting, []);
  assert.ok(errors.length >= 1, 'the server said why before closing');
  for (const e of errors) assert.ok(e instanceof ServerError && e.message === 'Authentication failed', e.message);
});

test('after the server drops an established connection the client reconnects and rejoins', async () => {
  // The server closes with 1009 on a frame over its 128 KiB default limit: a retryable close.
  const big = 'x'.repeat(300 * 1024);
  const erin = recordingClient('erin', { reconnect: { minDelay: 20, maxDelay: 100 } });
  const reconnecting = [];
  erin.client.on('reconnecting', (r) => reconnecting.push(r));
  try {
    await erin.client.connect();
    erin.client.join(ROOM);
    erin.client.send('chat', { room: ROOM, text: big });
    await until(() => erin.rec.closes.length >= 1, 'the server to close the oversized connection');
    const first = erin.rec.closes[0];
    assert.equal(first.code, 1009, `closed with ${first.code} ${first.reason}`);
    assert.equal(first.error?.name, 'MessageTooBigError');
    assert.equal(first.willReconnect, true);
    await until(() => erin.client.state === 'connected', 'the reconnect');
    assert.ok(reconnecting.length >= 1 && reconnecting[0].attempt === 1);
    assert.deepEqual(erin.client.rooms, [ROOM]);
    await handshakeRoom(erin, erin, 'e'); // rejoined: its own probes come back
  } finally {
    await erin.client.close();
  }
});

// Last: it stops the server.
test('server shutdown closes with 1001 (ServerShutdownError) and the client starts reconnecting', async () => {
  const gina = recordingClient('gina', { reconnect: { minDelay: 50, maxDelay: 200 } });
  const reconnecting = [];
  gina.client.on('reconnecting', (r) => reconnecting.push(r));
  try {
    await gina.client.connect();
    server.signal('SIGINT');
    await until(() => gina.rec.closes.length >= 1, 'the shutdown close');
    const { code, error, willReconnect } = gina.rec.closes[0];
    assert.equal(code, 1001);
    assert.ok(error instanceof ServerShutdownError);
    assert.equal(willReconnect, true);
    await until(() => reconnecting.length >= 1, 'a reconnect attempt');
  } finally {
    await gina.client.close();
  }
  assert.equal(gina.client.state, 'closed');
});
