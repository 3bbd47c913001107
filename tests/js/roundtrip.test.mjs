// Rust <-> JS v1 interop through examples/v1_roundtrip.rs (built by this test).
// Run: node --test tests/js/roundtrip.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  generateKeyPair, exportPublicKeyB64, importPrivateKey, deriveV1Key, sealV1, openV1, bytesToB64, b64ToBytes,
  DecryptError,
} from '../../examples/js/sealcast-client.js';
import { buildExample, lineProcess } from './support/rust.mjs';

let rust;
before(async () => {
  rust = lineProcess(await buildExample('v1_roundtrip'));
});
after(async () => {
  await rust?.close();
});

const hexToBytes = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));

/** A Rust "server" key pair, a JS "client" key pair, a salt, and the client's derived key. */
async function session() {
  const server = await rust.call({ op: 'keypair' });
  assert.match(server.secret, /^[0-9a-f]{64}$/);
  assert.equal(b64ToBytes(server.publicKey).length, 65);
  const client = await generateKeyPair();
  const clientPub = await exportPublicKeyB64(client.publicKey);
  const salt = bytesToB64(crypto.getRandomValues(new Uint8Array(32)));
  const key = await deriveV1Key(client.privateKey, server.publicKey, salt);
  const rustSeal = (plaintext, aad = null) =>
    rust.call({ op: 'derive_seal', secret: server.secret, peer: clientPub, salt, plaintext, aad });
  const rustOpen = (iv, ct, aad = null) =>
    rust.call({ op: 'derive_open', secret: server.secret, peer: clientPub, salt, iv, ct, aad });
  return { server, clientPub, salt, key, rustSeal, rustOpen };
}

const PLAINTEXTS = [
  ['ascii JSON', JSON.stringify({ event: 'chat', data: { room: 'chat-x', text: 'hello' } }), null],
  ['unicode with AAD', 'héllo wörld ✓ 🔥 — 中文 \u0000 "quotes"', 'client-42'],
  ['empty', '', null],
  ['empty with unicode AAD', '', 'ключ ✓'],
  ['100 KB', 'sealcast '.repeat(Math.ceil(100_000 / 9)).slice(0, 100_000), null],
  ['100 KB unicode with AAD', '✓🔥ü'.repeat(12_500), 'big'],
];

test('Rust seals -> JS opens', async () => {
  const s = await session();
  for (const [what, text, aad] of PLAINTEXTS) {
    const rec = await s.rustSeal(text, aad);
    assert.equal(rec.error, undefined, `${what}: ${rec.error}`);
    assert.equal(b64ToBytes(rec.iv).length, 12);
    assert.equal(await openV1(s.key, rec.iv, rec.ct, aad), text, what);
    if (aad !== null) await assert.rejects(openV1(s.key, rec.iv, rec.ct), DecryptError, `${what}: AAD is bound`);
  }
});

test('JS seals -> Rust opens', async () => {
  const s = await session();
  for (const [what, text, aad] of PLAINTEXTS) {
    const rec = await sealV1(s.key, text, aad);
    const res = await s.rustOpen(rec.iv, rec.ct, aad);
    assert.equal(res.error, undefined, `${what}: ${res.error}`);
    assert.equal(res.plaintext, text, what);
  }
});

test('Rust refuses JS-tampered records, wrong AAD and a wrong salt', async () => {
  const s = await session();
  const rec = await sealV1(s.key, 'attack at dawn', 'aad');
  assert.equal((await s.rustOpen(rec.iv, rec.ct, 'aad')).plaintext, 'attack at dawn', 'the untampered record opens');
  const flipped = (b64, i) => {
    const bytes = b64ToBytes(b64);
    bytes[i < 0 ? bytes.length + i : i] ^= 0x80;
    return bytesToB64(bytes);
  };
  for (const [what, iv, ct, aad] of [
    ['ct body', rec.iv, flipped(rec.ct, 0), 'aad'],
    ['tag', rec.iv, flipped(rec.ct, -1), 'aad'],
    ['iv', flipped(rec.iv, 5), rec.ct, 'aad'],
    ['truncated', rec.iv, bytesToB64(b64ToBytes(rec.ct).subarray(0, 15)), 'aad'],
    ['wrong aad', rec.iv, rec.ct, 'aae'],
    ['missing aad', rec.iv, rec.ct, null],
  ]) {
    const res = await s.rustOpen(iv, ct, aad);
    assert.equal(res.plaintext, undefined, `${what}: must not open`);
    assert.equal(typeof res.error, 'string', what);
  }
  const otherSalt = bytesToB64(crypto.getRandomValues(new Uint8Array(32)));
  const res = await rust.call({ op: 'derive_open', secret: s.server.secret, peer: s.clientPub, salt: otherSalt, iv: rec.iv, ct: rec.ct, aad: 'aad' });
  assert.equal(typeof res.error, 'string', 'a different salt derives a different key');
});

test('JS derives the same key from the Rust secret (the server side of the exchange)', async () => {
  const s = await session();
  const serverPriv = await importPrivateKey(hexToBytes(s.server.secret), s.server.publicKey);
  const serverKey = await deriveV1Key(serverPriv, s.clientPub, s.salt);
  const rec = await s.rustSeal('same key on both sides', null);
  assert.equal(await openV1(serverKey, rec.iv, rec.ct), 'same key on both sides');
  const back = await sealV1(serverKey, 'and back');
  assert.equal(await openV1(s.key, back.iv, back.ct), 'and back');
});
