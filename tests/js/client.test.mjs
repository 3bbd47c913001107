// Unit tests of the sealcast JS client: v1 crypto against the reference vectors, records,
// close-code mapping, backoff. No server needed. Run: node --test tests/js/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  V1_HKDF_INFO, CloseCode, b64ToBytes, bytesToB64, generateKeyPair, exportPublicKeyB64, importPrivateKey,
  importPublicKeyB64, deriveV1Key, sealV1, openV1, openV1Bytes, errorForClose, backoffDelay, DEFAULT_RECONNECT,
  SealcastError, DecryptError, AuthTimeoutError, HeartbeatTimeoutError, AuthenticationError,
  EncryptionRequiredError, ServerShutdownError, PolicyViolationError, MessageTooBigError, ConnectionClosedError,
} from '../../examples/js/sealcast-client.js';

// The repo's sibling ../shared holds the vectors; a missing file must fail, not skip.
const VECTORS = fileURLToPath(new URL('../../../shared/vectors/ignis-ecdh-v1.json', import.meta.url));
const hexToBytes = (hex) => Uint8Array.from(hex.match(/../g) ?? [], (h) => parseInt(h, 16));
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

function loadVectors() {
  const doc = JSON.parse(readFileSync(VECTORS, 'utf8')); // throws (test fails) when missing
  assert.ok(Array.isArray(doc.cases) && doc.cases.length >= 4, 'vector file has cases');
  return doc.cases;
}

test('every v1 vector opens with keys derived on both sides', async () => {
  const cases = loadVectors();
  for (const [i, c] of cases.entries()) {
    assert.equal(c.hkdf_info, V1_HKDF_INFO, `case ${i}: info label`);
    const clientPriv = await importPrivateKey(hexToBytes(c.client_private_key_hex), c.client_public_key_b64);
    const serverPriv = await importPrivateKey(hexToBytes(c.server_private_key_hex), c.server_public_key_b64);
    const clientKey = await deriveV1Key(clientPriv, c.server_public_key_b64, c.salt_b64);
    const serverKey = await deriveV1Key(serverPriv, c.client_public_key_b64, c.salt_b64);
    for (const [side, key] of [['client', clientKey], ['server', serverKey]]) {
      const bytes = await openV1Bytes(key, c.iv_b64, c.ct_b64, c.additional_data);
      assert.equal(sha256(bytes), c.plaintext_sha256_hex, `case ${i} (${side}): sha256 of the UTF-8 plaintext`);
      const text = await openV1(key, c.iv_b64, c.ct_b64, c.additional_data);
      assert.equal(text.length, c.plaintext_len, `case ${i} (${side}): length (UTF-16 units, as the reference counts)`);
      if (c.plaintext !== null) assert.equal(text, c.plaintext, `case ${i} (${side}): plaintext`);
    }
    // the AAD is bound: opening without it (or with it, when there was none) fails
    const wrongAad = c.additional_data === null ? 'x' : null;
    await assert.rejects(openV1Bytes(clientKey, c.iv_b64, c.ct_b64, wrongAad), DecryptError, `case ${i}: aad bound`);
  }
});

test('a key derived with the wrong salt does not open a vector', async () => {
  const [c] = loadVectors();
  const priv = await importPrivateKey(hexToBytes(c.client_private_key_hex), c.client_public_key_b64);
  const salt = b64ToBytes(c.salt_b64);
  salt[0] ^= 1;
  const key = await deriveV1Key(priv, c.server_public_key_b64, bytesToB64(salt));
  await assert.rejects(openV1(key, c.iv_b64, c.ct_b64), DecryptError);
});

async function pairOfKeys() {
  const a = await generateKeyPair();
  const b = await generateKeyPair();
  const salt = bytesToB64(crypto.getRandomValues(new Uint8Array(32)));
  const ka = await deriveV1Key(a.privateKey, await exportPublicKeyB64(b.publicKey), salt);
  const kb = await deriveV1Key(b.privateKey, await exportPublicKeyB64(a.publicKey), salt);
  return [ka, kb];
}

test('seal -> open round trip, both directions, with and without AAD', async () => {
  const [ka, kb] = await pairOfKeys();
  const text = JSON.stringify({ event: 'chat', data: { text: 'héllo ✓ 🔥' } });
  const r1 = await sealV1(ka, text);
  assert.equal(b64ToBytes(r1.iv).length, 12);
  assert.equal(b64ToBytes(r1.ct).length, new TextEncoder().encode(text).length + 16);
  assert.equal(await openV1(kb, r1.iv, r1.ct), text);
  const r2 = await sealV1(kb, text, 'client-42');
  assert.equal(await openV1(ka, r2.iv, r2.ct, 'client-42'), text);
  await assert.rejects(openV1(ka, r2.iv, r2.ct, 'client-43'), DecryptError);
  const big = 'x'.repeat(200_000);
  const r3 = await sealV1(ka, big);
  assert.equal(await openV1(kb, r3.iv, r3.ct), big);
  const r4 = await sealV1(ka, '');
  assert.equal(await openV1(kb, r4.iv, r4.ct), '');
  // fresh IVs
  assert.notEqual((await sealV1(ka, text)).iv, (await sealV1(ka, text)).iv);
});

test('tampered ct, iv or tag is rejected with DecryptError', async () => {
  const [ka, kb] = await pairOfKeys();
  const { iv, ct } = await sealV1(ka, 'attack at dawn');
  const flip = (b64, index) => {
    const bytes = b64ToBytes(b64);
    bytes[index < 0 ? bytes.length + index : index] ^= 0x01;
    return bytesToB64(bytes);
  };
  assert.equal(await openV1(kb, iv, ct), 'attack at dawn');
  const bad = [
    ['ct body', iv, flip(ct, 0)],
    ['tag', iv, flip(ct, -1)],
    ['iv', flip(iv, 0), ct],
    ['truncated tag', iv, bytesToB64(b64ToBytes(ct).subarray(0, 10))],
    ['short iv', bytesToB64(new Uint8Array(8)), ct],
    ['not base64', '!!!', ct],
  ];
  for (const [what, i, c] of bad) {
    await assert.rejects(openV1(kb, i, c), (e) => e instanceof DecryptError && e instanceof SealcastError, what);
  }
  const [, other] = await pairOfKeys();
  await assert.rejects(openV1(other, iv, ct), DecryptError, 'wrong key');
});

test('public keys and salts are imported strictly', async () => {
  const { publicKey } = await generateKeyPair();
  const good = await exportPublicKeyB64(publicKey);
  assert.equal(b64ToBytes(good).length, 65);
  await importPublicKeyB64(good);
  const compressed = b64ToBytes(good).subarray(0, 33);
  compressed[0] = 0x02;
  await assert.rejects(importPublicKeyB64(bytesToB64(compressed)), SealcastError);
  const offCurve = b64ToBytes(good);
  offCurve[64] ^= 1;
  await assert.rejects(importPublicKeyB64(bytesToB64(offCurve)));
  const { privateKey } = await generateKeyPair();
  await assert.rejects(deriveV1Key(privateKey, good, bytesToB64(new Uint8Array(16))), /32 bytes/);
});

test('errorForClose maps every close code to its typed error', () => {
  const expected = [
    [CloseCode.SERVER_SHUTDOWN, ServerShutdownError],
    [CloseCode.POLICY_VIOLATION, PolicyViolationError],
    [CloseCode.MESSAGE_TOO_BIG, MessageTooBigError],
    [4001, AuthTimeoutError],
    [4002, HeartbeatTimeoutError],
    [4003, AuthenticationError],
    [4004, EncryptionRequiredError],
    [1006, ConnectionClosedError],
    [4999, ConnectionClosedError],
  ];
  for (const [code, Cls] of expected) {
    const err = errorForClose(code, 'why');
    assert.ok(err instanceof Cls, `${code} -> ${Cls.name}`);
    assert.ok(err instanceof SealcastError);
    assert.equal(err.name, Cls.name);
    assert.equal(err.code, code);
    assert.equal(err.message, 'why');
  }
  assert.equal(errorForClose(4003).message, 'Authentication failed');
  assert.equal(errorForClose(1000), null);
  assert.ok(!(errorForClose(4003) instanceof AuthTimeoutError));
});

test('backoff grows exponentially, is capped and fully jittered', () => {
  const policy = { minDelay: 100, maxDelay: 5000, factor: 2, jitter: 0 };
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 10].map((n) => backoffDelay(n, policy)), [100, 200, 400, 800, 1600, 3200, 5000, 5000]);
  assert.equal(backoffDelay(3, { ...policy, jitter: 1 }, () => 0), 400);
  assert.equal(backoffDelay(3, { ...policy, jitter: 1 }, () => 0.5), 200);
  assert.equal(backoffDelay(3, { ...policy, jitter: 0.5 }, () => 0.5), 300);
  const seen = new Set();
  for (let attempt = 1; attempt <= 40; attempt++) {
    for (let k = 0; k < 50; k++) {
      const d = backoffDelay(attempt, { ...policy, jitter: true });
      const cap = Math.min(5000, 100 * 2 ** (attempt - 1));
      assert.ok(d >= 0 && d <= cap, `attempt ${attempt}: ${d} within [0, ${cap}]`);
      if (attempt > 10) seen.add(d);
    }
  }
  assert.ok(seen.size > 50, 'jitter spreads the delays');
  assert.ok(backoffDelay(1) <= DEFAULT_RECONNECT.minDelay);
});
