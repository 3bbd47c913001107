// Test support: a scripted in-memory stand-in for the browser WebSocket (the test plays the
// server). Not a test file itself (node --test only picks up *.test.mjs here).
import assert from 'node:assert/strict';

/** A scripted stand-in for the browser WebSocket; the test plays the server. */
export class FakeSocket {
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
    queueMicrotask(() => {
      if (this.readyState !== 0) return;
      this.readyState = 1;
      this.onopen?.({});
    });
  }
  send(text) {
    assert.equal(this.readyState, 1, 'send on an open socket only');
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000, reason = '') {
    this.serverClose(code, reason);
  }
  // --- the server's side
  push(frame) {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }
  serverClose(code, reason = '') {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }
  sentEvents() {
    return this.sent.map((f) => f.event);
  }
}

