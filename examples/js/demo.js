// sealcast demo: encrypted room chat. Served at `/` by `sealcast serve` and `examples/chat.rs`; talks to `/ws`.
// Chat protocol: send {event:'chat', data:{room, text}}; receive {event:'chat', data:{room, from, text, time}}.
import { SealcastClient } from './sealcast-client.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const wsUrl = params.get('ws') ?? `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;

/** State for humans and for the browser test (tests/browser/e2e.mjs). */
const demo = (window.sealcastDemo = { received: [], connected: null, encrypted: false, errors: [], client: null });

$('ws-url').textContent = wsUrl;
if (params.get('name')) $('name').value = params.get('name');
if (params.get('room')) $('room').value = params.get('room');

function setStatus(text, kind) {
  const el = $('status');
  el.textContent = text;
  el.className = `status ${kind}`;
}

function setConnected(on) {
  for (const id of ['join', 'send', 'text']) $(id).disabled = !on;
  $('connect').textContent = on ? 'Disconnect' : 'Connect';
  $('name').disabled = on;
  $('profile').disabled = on;
}

function showRooms() {
  $('rooms').textContent = demo.client?.rooms.length ? `in: ${demo.client.rooms.join(', ')}` : '';
}

function addLine({ kind, from = '', room = '', text, time, encrypted = false }) {
  const li = document.createElement('li');
  li.className = kind;
  const meta = document.createElement('span');
  meta.className = 'meta';
  const when = time ? new Date(time) : new Date();
  meta.textContent = `${Number.isNaN(when.getTime()) ? '' : when.toLocaleTimeString()} ${room}`;
  const who = document.createElement('b');
  who.textContent = from;
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text; // never innerHTML: messages are untrusted
  li.append(meta, who, body);
  if (encrypted) {
    const lock = document.createElement('span');
    lock.className = 'lock';
    lock.title = 'arrived encrypted (AES-256-GCM) and was decrypted here';
    lock.textContent = 'sealed';
    li.append(lock);
  }
  const list = $('messages');
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

function recordError(err) {
  demo.errors.push({ name: err.name, message: err.message, code: err.code });
  addLine({ kind: 'error', text: `${err.name}: ${err.message}` });
}

async function connect() {
  const name = $('name').value.trim();
  if (!$('connect-form').reportValidity()) return;
  const client = new SealcastClient({ url: wsUrl, token: name, encryption: $('profile').value });
  demo.client = client;
  client.on('chat', (data, meta) => {
    demo.received.push({ ...data, encrypted: meta.encrypted });
    addLine({ kind: data.from === name ? 'chat mine' : 'chat', ...data, encrypted: meta.encrypted });
  });
  client.on('error', recordError);
  client.on('connected', (info) => {
    demo.connected = info;
    demo.encrypted = client.encrypted;
    demo.profile = client.profile;
    setStatus(client.encrypted ? `${info.userId} · encrypted ✓` : `${info.userId} · plaintext`, client.encrypted ? 'on' : 'plain');
    setConnected(true);
    showRooms();
  });
  client.on('reconnecting', ({ attempt, delay }) => setStatus(`reconnecting (#${attempt}, ${delay} ms)…`, 'wait'));
  client.on('close', ({ code, error, willReconnect }) => {
    demo.connected = null;
    demo.encrypted = false;
    setConnected(false);
    if (!willReconnect) setStatus(error ? `closed: ${error.message} (${code})` : 'disconnected', 'off');
    if (error) addLine({ kind: 'system', text: `connection closed: ${error.message} (${code})` });
  });
  setStatus('connecting…', 'wait');
  client.join($('room').value.trim() || 'chat-lobby'); // sent as soon as the server says connected
  try {
    await client.connect();
  } catch (err) {
    if (demo.client === client) demo.client = null;
    recordError(err);
  }
}

$('connect-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (demo.client && demo.client.state !== 'closed') {
    demo.client.close();
    demo.client = null;
  } else {
    connect();
  }
});

$('room-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (!$('room-form').reportValidity() || !demo.client) return;
  demo.client.join($('room').value.trim());
  showRooms();
});

$('send-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const text = $('text').value;
  if (!text.trim() || !demo.client) return;
  try {
    demo.client.send('chat', { room: $('room').value.trim(), text });
    $('text').value = '';
  } catch (err) {
    recordError(err);
  }
});
