// Browser end-to-end test: headless Chromium loads the demo page from the Rust chat server
// (examples/chat.rs) and two pages chat in an encrypted room, with a Node client listening in
// the clear; then encryption v2 in Chromium's WebCrypto: a pinned v2 client chats with a v1
// page, a wrong pin is refused, the Rust v2 vector replays, a tampered record is refused.
// Run: node tests/browser/e2e.mjs   (needs Debian `chromium`; CHROMIUM_PATH overrides)
// Prints `N passed, N failed` last and exits non-zero on any failure.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';
import { SealcastClient } from '../../examples/js/sealcast-client.js';
import { startChatServer, until } from '../js/support/rust.mjs';

const ROOM = 'chat-e2e';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const VECTORS = fileURLToPath(new URL('../../../shared/vectors/ignis-ecdh-v1.json', import.meta.url));
const V2_VECTOR = fileURLToPath(new URL('../vectors/sealcast-v2.json', import.meta.url));

const results = [];
async function check(name, fn) {
  try {
    await fn();
    results.push([name, true]);
    console.log(`ok - ${name}`);
  } catch (err) {
    results.push([name, false]);
    console.log(`not ok - ${name}\n  ${String(err?.stack ?? err).replace(/\n/g, '\n  ')}`);
  }
}

const demoState = (page) => page.evaluate(() => {
  const d = window.sealcastDemo;
  return { received: d.received, connected: d.connected, encrypted: d.encrypted, profile: d.profile, errors: d.errors };
});

async function openChat(browser, server, name, profile = 'v2') {
  const page = await browser.newPage();
  page.on('pageerror', (err) => console.log(`[${name}] page error: ${err.message}`));
  await page.goto(`${server.httpUrl}/`);
  await page.selectOption('#profile', profile);
  await page.fill('#name', name);
  await page.fill('#room', ROOM);
  await page.click('#connect');
  await page.waitForFunction(() => window.sealcastDemo?.connected !== null, null, { timeout: 10_000 });
  return page;
}

/** Send probes from `page` until `seen()` is true, so the room membership is known to be in place. */
async function probe(send, seen, tag) {
  for (let n = 0; !(await seen()); n++) {
    assert.ok(n < 100, `probe ${tag} never arrived`);
    await send(`probe-${tag}-${n}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let server;
let browser;
let listener;
try {
  server = await startChatServer();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });

  let alice, bob;
  await check('the demo page connects with v2 by default and with v1 on request ("encrypted ✓")', async () => {
    alice = await openChat(browser, server, 'alice');
    bob = await openChat(browser, server, 'bob', 'v1');
    for (const [who, page, profile] of [['alice', alice, 'v2'], ['bob', bob, 'v1']]) {
      const s = await demoState(page);
      assert.equal(s.connected.userId, who);
      assert.equal(s.profile, profile);
      if (profile === 'v1') {
        assert.ok(s.connected.serverPublicKey && s.connected.salt, 'v1: server key and salt in connected');
      } else {
        assert.ok(!('serverPublicKey' in s.connected), 'v2: keys came in the handshake, not connected');
      }
      assert.equal(s.encrypted, true);
      assert.match(await page.textContent('#status'), /encrypted ✓/);
    }
  });

  await check('a v2 browser and a v1 browser chat in an encrypted room; a plaintext Node client hears it in the clear', async () => {
    const heard = [];
    listener = new SealcastClient({ url: server.wsUrl, token: 'nodeear', encryption: 'none', WebSocket, reconnect: false });
    listener.on('chat', (data, meta) => heard.push({ ...data, encrypted: meta.encrypted }));
    await listener.connect();
    listener.join(ROOM);
    const sendFrom = (page) => (text) => page.evaluate((t) => window.sealcastDemo.client.send('chat', { room: 'chat-e2e', text: t }), text);
    const got = (page, prefix) => async () => (await demoState(page)).received.some((m) => m.text.startsWith(prefix));
    await probe(sendFrom(alice), got(bob, 'probe-a-'), 'a');
    await probe(sendFrom(bob), got(alice, 'probe-b-'), 'b');
    await probe(sendFrom(alice), async () => heard.some((m) => m.text.startsWith('probe-a2-')), 'a2');

    // the real messages go through the UI
    await alice.fill('#text', 'hello bob, sealed ✓');
    await alice.click('#send');
    await bob.fill('#text', 'hi alice 🔥');
    await bob.click('#send');
    for (const page of [alice, bob]) {
      await page.waitForFunction(
        () => ['hi alice 🔥', 'hello bob, sealed ✓'].every((t) => window.sealcastDemo.received.some((m) => m.text === t)),
        null,
        { timeout: 10_000 },
      );
    }
    // a last marker: anything duplicated would have arrived before it
    await sendFrom(alice)('end');
    for (const page of [alice, bob]) await page.waitForFunction(() => window.sealcastDemo.received.some((m) => m.text === 'end'));
    for (const [who, page] of [['alice', alice], ['bob', bob]]) {
      const s = await demoState(page);
      const real = s.received.filter((m) => !m.text.startsWith('probe-') && m.text !== 'end');
      assert.deepEqual(real.map((m) => [m.from, m.text]).sort(), [['alice', 'hello bob, sealed ✓'], ['bob', 'hi alice 🔥']], `${who} got each once`);
      assert.ok(real.every((m) => m.encrypted === true && m.room === ROOM), `${who}: decrypted from encrypted frames`);
      assert.deepEqual(s.errors, [], `${who}: no errors`);
      assert.ok((await page.textContent('#messages')).includes(who === 'alice' ? 'hi alice 🔥' : 'hello bob, sealed ✓'), 'shown in the list');
    }
    await until(() => heard.some((m) => m.text === 'hi alice 🔥') && heard.some((m) => m.text === 'hello bob, sealed ✓'), 'the Node listener');
    assert.ok(heard.every((m) => m.encrypted === false));
  });

  await check('in Chromium a tampered record is refused and the reference vectors open', async () => {
    const vectors = JSON.parse(readFileSync(VECTORS, 'utf8')).cases.filter((c) => c.plaintext !== null);
    const out = await alice.evaluate(async (cases) => {
      const m = await import('./sealcast-client.js');
      const hex = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
      const opened = [];
      for (const c of cases) {
        const priv = await m.importPrivateKey(hex(c.client_private_key_hex), c.client_public_key_b64);
        const key = await m.deriveV1Key(priv, c.server_public_key_b64, c.salt_b64);
        opened.push((await m.openV1(key, c.iv_b64, c.ct_b64, c.additional_data)) === c.plaintext);
      }
      const a = await m.generateKeyPair();
      const b = await m.generateKeyPair();
      const salt = m.bytesToB64(crypto.getRandomValues(new Uint8Array(32)));
      const ka = await m.deriveV1Key(a.privateKey, await m.exportPublicKeyB64(b.publicKey), salt);
      const kb = await m.deriveV1Key(b.privateKey, await m.exportPublicKeyB64(a.publicKey), salt);
      const rec = await m.sealV1(ka, 'top secret');
      const genuine = await m.openV1(kb, rec.iv, rec.ct);
      const ct = m.b64ToBytes(rec.ct);
      ct[0] ^= 1;
      const tampered = await m.openV1(kb, rec.iv, m.bytesToB64(ct)).then(() => 'opened', (e) => e.name);
      return { opened, genuine, tampered };
    }, vectors);
    assert.deepEqual(out.opened, vectors.map(() => true));
    assert.equal(out.genuine, 'top secret');
    assert.equal(out.tampered, 'DecryptError');
  });

  await check('in Chromium a v2 client with the pinned server key chats with the demo pages; every frame is a record', async () => {
    assert.ok(server.signingKey, 'the chat server printed its v2 signing key');
    const got = (page, text) => async () => (await demoState(page)).received.some((m) => m.text === text);
    const start = bob.evaluate(async ({ url, pin, room }) => {
      const { SealcastClient } = await import('./sealcast-client.js');
      const c = new SealcastClient({ url, token: 'carol', serverSigningKey: pin, reconnect: false });
      const raw = [];
      const chats = [];
      c.on('raw', (f) => raw.push(f));
      c.on('chat', (d, meta) => chats.push({ ...d, encrypted: meta.encrypted }));
      const info = await c.connect();
      c.join(room);
      window.v2e2e = { c, raw, chats };
      return { profile: c.profile, userId: info.userId, v1Fields: 'serverPublicKey' in info };
    }, { url: server.wsUrl, pin: server.signingKey, room: ROOM });
    assert.deepEqual(await start, { profile: 'v2', userId: 'carol', v1Fields: false });
    const carolSend = (text) => bob.evaluate((t) => window.v2e2e.c.send('chat', { room: 'chat-e2e', text: t }), text);
    const carolGot = (prefix) => async () => bob.evaluate((p) => window.v2e2e.chats.some((m) => m.text.startsWith(p)), prefix);
    await probe(carolSend, async () => (await demoState(alice)).received.some((m) => m.text.startsWith('probe-c-')), 'c');
    await probe((t) => alice.evaluate((x) => window.sealcastDemo.client.send('chat', { room: 'chat-e2e', text: x }), t), carolGot('probe-d-'), 'd');
    await carolSend('v2 from carol ✓');
    await alice.waitForFunction(() => window.sealcastDemo.received.some((m) => m.text === 'v2 from carol ✓'), null, { timeout: 10_000 });
    assert.ok(await got(alice, 'v2 from carol ✓')());
    const out = await bob.evaluate(async () => {
      const { c, raw, chats } = window.v2e2e;
      await c.close();
      const sealed = raw.slice(1).every((f) => f.event === 'encrypted' && Object.keys(f.data).join() === 'ct');
      return { first: raw[0].event, sealed, n: raw.length, allEncrypted: chats.every((m) => m.encrypted) };
    });
    assert.equal(out.first, 'handshake');
    assert.ok(out.sealed && out.n > 3, 'after the server hello, only records');
    assert.ok(out.allEncrypted);
  });

  await check('in Chromium a v2 client with a wrong pinned key is refused (EncryptionRequiredError)', async () => {
    const out = await bob.evaluate(async (url) => {
      const { SealcastClient } = await import('./sealcast-client.js');
      const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign']);
      const { bytesToB64 } = await import('./sealcast-client.js');
      const wrong = bytesToB64(new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey)));
      const c = new SealcastClient({ url, token: 'eve', serverSigningKey: wrong, reconnect: false });
      return c.connect().then(() => 'connected', (e) => [e.name, e.code]);
    }, server.wsUrl);
    assert.deepEqual(out, ['EncryptionRequiredError', 4004]);
  });

  await check('in Chromium the Rust v2 vector replays byte for byte and a tampered v2 record is refused', async () => {
    const vector = JSON.parse(readFileSync(V2_VECTOR, 'utf8'));
    const out = await alice.evaluate(async (v) => {
      const m = await import('./sealcast-client.js');
      const hex = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
      const privateKey = await m.importPrivateKey(hex(v.client_private_key_hex), v.client_public_key_b64);
      const hs = await m.startV2Handshake({ keyPair: { privateKey, publicKeyB64: v.client_public_key_b64 }, nonce: m.b64ToBytes(v.client_nonce_b64), offered: v.offered });
      const { codec, finRecord } = await hs.finish(JSON.parse(v.server_hello).data, { serverSigningKey: v.server_signing_public_key_b64 });
      const records = [finRecord];
      for (const p of v.client_plaintexts) records.push(await codec.encode(JSON.parse(p)));
      const opened = [];
      for (const r of v.server_records) opened.push(JSON.stringify(await codec.decode(JSON.parse(r)).then((x) => ({ event: x.event, data: x.data }))));
      // A tampered record between a fresh pair of real handshakes.
      const client = await m.startV2Handshake();
      const server = await m.acceptV2Handshake(JSON.parse(client.hello).data);
      const c = await client.finish(JSON.parse(server.hello).data);
      const s = await server.finish(JSON.parse(c.finRecord));
      const rec = JSON.parse(await s.encode({ event: 'chat', data: 'top secret' }));
      const ct = m.b64ToBytes(rec.data.ct);
      ct[0] ^= 1;
      rec.data.ct = m.bytesToB64(ct);
      const tampered = await c.codec.decode(rec).then(() => 'opened', (e) => e.name);
      const after = await c.codec.decode(JSON.parse(await s.encode({ event: 'chat' }))).then(() => 'opened', (e) => e.name);
      return { records, opened, tampered, after };
    }, vector);
    assert.deepEqual(out.records, vector.client_records);
    assert.deepEqual(out.opened, vector.server_plaintexts.map((p) => JSON.stringify(JSON.parse(p))));
    assert.equal(out.tampered, 'DecryptError');
    assert.equal(out.after, 'DecryptError', 'the channel is dead after a failure');
  });

  await check('in Chromium a rejected token fails with AuthenticationError (4003)', async () => {
    const out = await bob.evaluate(async (url) => {
      const { SealcastClient } = await import('./sealcast-client.js');
      const c = new SealcastClient({ url, token: 'bad token!', reconnect: false });
      return c.connect().then(() => 'connected', (e) => [e.name, e.code]);
    }, server.wsUrl);
    assert.deepEqual(out, ['AuthenticationError', 4003]);
  });
} catch (err) {
  results.push(['setup', false]);
  console.log(`not ok - setup\n  ${String(err?.stack ?? err).replace(/\n/g, '\n  ')}`);
  if (server) console.log(server.log());
} finally {
  await listener?.close().catch(() => {});
  await browser?.close().catch(() => {});
  await server?.stop().catch(() => {});
}

const passed = results.filter(([, ok]) => ok).length;
const failed = results.length - passed;
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed || !passed ? 1 : 0);
