// bench/table.mjs, the benchmark report, run on small results files: the ratio of medians and
// its verdict, each repetition's ratio on the rows that sit near 1×, runs left out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const TABLE = new URL('../../bench/table.mjs', import.meta.url).pathname;

/** The table printed for `lines` (RESULT lines as bench/run.sh writes them). */
function table(lines) {
  const dir = mkdtempSync(join(tmpdir(), 'sealcast-table-'));
  try {
    const file = join(dir, 'results.txt');
    writeFileSync(file, ['# 2026-12-04T00:00:00Z mode=full nproc=2 cpu=test', ...lines, ''].join('\n'));
    // The rows' labels name these rates when bench/run.sh exports them.
    const env = { ...process.env };
    delete env.STEADY_RATE;
    delete env.ISOLATED_RATE;
    return execFileSync(process.execPath, [TABLE, file], { encoding: 'utf8', env });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The cells of the first row whose label starts with `label`, after the row labelled `after`. */
function cells(out, label, after) {
  const rows = out.split('\n').filter((l) => l.startsWith('| ')).map((l) => l.slice(2, -2).split(' | '));
  const from = after ? rows.findIndex((r) => r[0].startsWith(after)) : 0;
  assert.ok(from >= 0, `no row ${after}`);
  const row = rows.slice(from).find((r) => r[0].startsWith(label));
  assert.ok(row, `no row ${label}${after ? ` after ${after}` : ''}\n${out}`);
  return row;
}

const idle = (server, rep, rate) =>
  `scenario=idle server=${server} rep=${rep} label=idle/${server}/${rep} clients=100 connected=100 encrypted=0 decoys=0 ` +
  `connect_per_s=${rate} connect_server_cpu_s=0.004 connect_gen_cpu_s=0.006 rss_base_kib=6000 rss_kib=6260 rss_per_conn_b=2662`;
const steady = (server, rep, p99) =>
  `scenario=steady server=${server} rep=${rep} label=steady/${server}/${rep} clients=100 connected=100 messages=100 ` +
  `deliveries=10000 lost=0 duplicates=0 p50_ms=${p99 / 2} p99_ms=${p99} cpu_s_per_m=4.5 deliveries_per_s=20000`;

test('connect+auth: the ratio of the medians decides, and each repetition\'s ratio is listed in order', () => {
  const out = table([
    idle('sealcast', 1, 900), idle('bun', 1, 1000),
    idle('sealcast', 2, 1200), idle('bun', 2, 1000),
    idle('sealcast', 3, 1100), idle('bun', 3, 1000),
  ]);
  const [, ours, theirs, ratio, , met] = cells(out, 'idle (100 authenticated): connect+auth/s');
  assert.equal(ours, '1100 (900–1200)');
  assert.equal(theirs, '1000 (1000–1000)');
  assert.equal(ratio, '1.10×');
  assert.equal(met, 'yes');
  const pairs = cells(out, "… each repetition's ratio", 'idle (100 authenticated): connect+auth/s');
  assert.equal(pairs[0], "… each repetition's ratio (met in 2 of 3)");
  assert.equal(pairs[3], '0.90×, 1.20×, 1.10×');
  assert.equal(pairs[4], 'info');
});

test('steady p99: lower is met, and a repetition whose other side failed is no pair', () => {
  const out = table([
    steady('sealcast', 1, 20), steady('bun', 1, 25),
    steady('sealcast', 2, 30), steady('bun', 2, 25),
    steady('sealcast', 3, 22), `scenario=steady server=bun rep=3 failed=1`,
    steady('sealcast', 4, 24), steady('bun', 4, 20),
  ]);
  const [, , , ratio, , met] = cells(out, 'steady 200 msg/s to 100: p99 ms');
  // Medians: 23 (of 20, 22, 24, 30) against 25 (of 20, 25, 25).
  assert.equal(ratio, '0.92×');
  assert.equal(met, 'yes');
  const pairs = cells(out, "… each repetition's ratio", 'steady 200 msg/s to 100: p99 ms');
  assert.equal(pairs[0], "… each repetition's ratio (met in 1 of 3)");
  assert.equal(pairs[3], '0.80×, 1.20×, 1.20×');
  assert.match(out, /failed runs \(left out\): steady\/bun\/3/);
});

test('one repetition: no list of ratios, and a miss is marked', () => {
  const out = table([idle('sealcast', 1, 900), idle('bun', 1, 1000)]);
  assert.equal(cells(out, 'idle (100 authenticated): connect+auth/s')[5], '**no**');
  assert.doesNotMatch(out, /each repetition's ratio/);
});

test('the same results print the same table (the bootstrap interval has a fixed seed)', () => {
  const cycles = (xs) => xs.join(',');
  const alt = (rep, sealed, decoys) =>
    `scenario=mixed_paced_alternating server=sealcast_v1_pinned rep=${rep} label=x clients=1500 connected=1500 encrypted=500 ` +
    `decoys=500 alt_cycles=4 alt_next_to_sealed=${cycles(sealed)} alt_next_to_decoys=${cycles(decoys)} ` +
    `alt_phase_wall_s=${cycles(Array(16).fill(0.3))} alt_phase_cpu_s=${cycles(Array(16).fill(0.1))}`;
  const lines = [alt(1, [0.08, 0.09, 0.1, 0.07], [0.09, 0.1, 0.08, 0.11]), alt(2, [0.09, 0.06, 0.1, 0.08], [0.1, 0.09, 0.12, 0.08])];
  const first = table(lines);
  assert.equal(table(lines), first);
  const interval = cells(first, "… the ratio's 95 % interval");
  assert.match(interval[3], /^\d\.\d\d–\d\.\d\d×$/);
  const [low, high] = interval[3].slice(0, -1).split('–').map(Number);
  assert.ok(low <= 0.85 && high >= 0.85 && low < high, interval[3]);
});

const sealed = (scenario, server, rep, cpu) =>
  `scenario=${scenario} server=${server} rep=${rep} label=${scenario}/${server}/${rep} clients=100 connected=100 encrypted=100 ` +
  `decoys=0 messages=100 deliveries=10000 lost=0 duplicates=0 cpu_s_per_m=${cpu} deliveries_per_s=20000 p99_ms=5 gen_cores=1.2`;

test('encrypted rows: v1 and batched v2 are judged against our plaintext, v2 with one frame per record is information', () => {
  const out = table([
    sealed('fanout_1k', 'sealcast', 1, 0.05),
    sealed('encrypted', 'sealcast_v1', 1, 0.18),
    sealed('encrypted_v2', 'sealcast_v2', 1, 0.09),
    sealed('encrypted_v2_single', 'sealcast_v2', 1, 0.21),
  ]);
  const v1 = cells(out, 'encrypted v1 fan-out (100 sealed receivers): vs our plaintext 1k');
  assert.deepEqual([v1[3], v1[4], v1[5]], ['3.60×', '≤ 4× plaintext', 'yes']);
  const v2 = cells(out, 'encrypted v2 fan-out (100 sealed receivers): vs our plaintext 1k');
  assert.deepEqual([v2[3], v2[4], v2[5]], ['1.80×', '≤ 4× plaintext', 'yes']);
  const single = cells(out, 'encrypted v2 fan-out, one frame per record (100 sealed receivers): vs our plaintext 1k');
  assert.deepEqual([single[3], single[4], single[5]], ['4.20×', 'info', '']);
  const cpu = cells(out, 'encrypted v2 fan-out, one frame per record (100 sealed receivers): server CPU-s / 1M');
  assert.deepEqual([cpu[1], cpu[4], cpu[5]], ['0.210', 'info', '']);
});
