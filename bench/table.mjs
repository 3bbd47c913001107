// Prints the sealcast-vs-Bun table from the RESULT lines bench/run.sh collected.
//
//   bun bench/table.mjs target/bench-results.txt      (node works too)
//
// Each cell is the median over repetitions, with the range (min–max) when there are several,
// so the noise of a shared 2-core machine stays visible. Ratios are sealcast / Bun of the
// medians, taken from the same run; the connect+auth and steady p99 rows, which sit near 1×,
// also list each repetition's own ratio.

import { readFileSync } from "node:fs";

const file = process.argv[2] ?? "target/bench-results.txt";
const lines = readFileSync(file, "utf8").split("\n");
const header = lines.find((l) => l.startsWith("#")) ?? "";
const runs = lines
  .filter((l) => l.startsWith("scenario="))
  .map((l) => Object.fromEntries(l.split(" ").map((kv) => kv.split("=", 2))));

// A run that could not connect every client or stalled measured something else: it is left
// out of the medians and counted in the "failed runs" line below the table.
const broken = (r) => r.failed || Number(r.connected) < Number(r.clients) || r.stalled === "1";
const pick = (scenario, server) => runs.filter((r) => r.scenario === scenario && r.server === server && !broken(r));
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const values = (scenario, server, f) => pick(scenario, server).map((r) => (typeof f === "function" ? f(r) : Number(r[f])));
// Median, range and count of the finite numbers in `xs`.
const pooled = (xs) => {
  const s = xs.filter(Number.isFinite);
  return { med: median(s), min: Math.min(...s), max: Math.max(...s), n: s.length };
};
const stat = (scenario, server, f) => pooled(values(scenario, server, f));
// A scenario's runs that worked, by repetition.
const byRep = (scenario, server) => Object.fromEntries(pick(scenario, server).map((r) => [r.rep, r]));

// CPU-s per 1M deliveries that a room's other half adds: each run of `whole` minus the run of
// `halfName` (that half alone) from the same repetition, over the deliveries it adds.
const added = (whole, halfName, server) => {
  const half = byRep(halfName, server);
  return stat(whole, server, (r) => {
    const h = half[r.rep];
    if (!h) return NaN;
    return ((Number(r.server_cpu_s) - Number(h.server_cpu_s)) / (Number(r.deliveries) - Number(h.deliveries))) * 1e6;
  });
};

const fmt = (x, digits) => {
  if (!Number.isFinite(x)) return "–";
  if (Math.abs(x) >= 10000) return Math.round(x).toLocaleString("en-US");
  return x.toFixed(digits);
};
const cell = (s, digits) => {
  if (!s || s.n === 0) return "–";
  const med = fmt(s.med, digits);
  return s.n > 1 ? `${med} (${fmt(s.min, digits)}–${fmt(s.max, digits)})` : med;
};

const rows = [];
// row(label, sealcast stat, bun stat or null, digits, target text, check(ratio, ours) → bool|null)
function row(label, ours, theirs, digits, target, check, ratioOverride) {
  const ratio = ratioOverride ?? (theirs && theirs.n ? ours.med / theirs.med : NaN);
  // No ratio (the other side has no run that worked): nothing to judge.
  const judged = check && (Number.isFinite(ratio) || !theirs || theirs.n > 0);
  const verdict = judged ? check(ratio, ours.med) : null;
  rows.push([
    label,
    cell(ours, digits),
    theirs ? cell(theirs, digits) : "–",
    Number.isFinite(ratio) ? `${ratio.toFixed(2)}×` : "–",
    target,
    verdict === null ? "" : verdict ? "yes" : "**no**",
  ]);
}

const has = (scenario) => runs.some((r) => r.scenario === scenario);

// Each repetition's ratio, sealcast's run over Bun's in the same repetition (run.sh runs them
// one after the other), and in how many of them `check` held: for the rows whose medians sit
// near 1×, where the ratio of medians alone hides how often either side was ahead.
function pairsRow(scenario, server, f, digits, check) {
  const theirs = byRep(scenario, "bun");
  const ratios = pick(scenario, server)
    .filter((r) => theirs[r.rep])
    .map((r) => Number(r[f]) / Number(theirs[r.rep][f]))
    .filter(Number.isFinite);
  if (ratios.length < 2) return;
  const met = ratios.filter(check).length;
  const list = ratios.map((x) => `${x.toFixed(digits)}×`).join(", ");
  rows.push([`… each repetition's ratio (met in ${met} of ${ratios.length})`, "–", "–", list, "info", ""]);
}

for (const [scenario, name] of [
  ["fanout_1k", "fan-out 1k"],
  ["fanout_10k", "fan-out 10k"],
]) {
  if (!has(scenario)) continue;
  const any = pick(scenario, "sealcast")[0] ?? pick(scenario, "bun")[0] ?? {};
  const label = `${name} (${any.connected ?? "?"} clients, ${any.messages ?? "?"} msgs)`;
  row(`${label}: server CPU-s / 1M deliveries`, stat(scenario, "sealcast", "cpu_s_per_m"), stat(scenario, "bun", "cpu_s_per_m"), 3, "≤ 0.8× Bun", (r) => r <= 0.8);
  row(`${label}: deliveries/s`, stat(scenario, "sealcast", "deliveries_per_s"), stat(scenario, "bun", "deliveries_per_s"), 0, "≥ 1× Bun", (r) => r >= 1);
  row(`${label}: p99 latency ms (window)`, stat(scenario, "sealcast", "p99_ms"), stat(scenario, "bun", "p99_ms"), 2, "info", null);
  row(`${label}: generator cores used`, stat(scenario, "sealcast", "gen_cores"), stat(scenario, "bun", "gen_cores"), 2, "info", null);
  row(`${label}: lost + duplicate`, stat(scenario, "sealcast", (r) => Number(r.lost) + Number(r.duplicates)), stat(scenario, "bun", (r) => Number(r.lost) + Number(r.duplicates)), 0, "0", (_r, ours) => ours === 0);
}

if (has("small_room")) {
  const any = pick("small_room", "sealcast")[0] ?? pick("small_room", "bun")[0] ?? {};
  const label = `room of ${any.connected ?? "?"} (${any.messages ?? "?"} msgs, each read from Redis)`;
  row(`${label}: server CPU-s / 1M deliveries`, stat("small_room", "sealcast", "cpu_s_per_m"), stat("small_room", "bun", "cpu_s_per_m"), 3, "info", null);
  row(`${label}: deliveries/s`, stat("small_room", "sealcast", "deliveries_per_s"), stat("small_room", "bun", "deliveries_per_s"), 0, "info", null);
  row(`${label}: lost + duplicate`, stat("small_room", "sealcast", (r) => Number(r.lost) + Number(r.duplicates)), stat("small_room", "bun", (r) => Number(r.lost) + Number(r.duplicates)), 0, "0", (_r, ours) => ours === 0);
}

if (has("steady")) {
  const any = pick("steady", "sealcast")[0] ?? {};
  const label = `steady ${process.env.STEADY_RATE ?? 200} msg/s to ${any.connected ?? "?"}`;
  row(`${label}: p50 ms`, stat("steady", "sealcast", "p50_ms"), stat("steady", "bun", "p50_ms"), 2, "info", null);
  row(`${label}: p99 ms`, stat("steady", "sealcast", "p99_ms"), stat("steady", "bun", "p99_ms"), 2, "≤ 1× Bun", (r) => r <= 1);
  pairsRow("steady", "sealcast", "p99_ms", 2, (r) => r <= 1);
  row(`${label}: server CPU-s / 1M deliveries`, stat("steady", "sealcast", "cpu_s_per_m"), stat("steady", "bun", "cpu_s_per_m"), 3, "info", null);
}

const plain1k = stat("fanout_1k", "sealcast", "cpu_s_per_m");
// v2 clients offer batched records (as the JS client does); the same room of clients that do
// not (one frame per record) is information.
for (const [scenario, server, profile, judged] of [
  ["encrypted", "sealcast_v1", "v1 fan-out", true],
  ["encrypted_v2", "sealcast_v2", "v2 fan-out", true],
  ["encrypted_v2_single", "sealcast_v2", "v2 fan-out, one frame per record", false],
]) {
  if (!has(scenario)) continue;
  const any = pick(scenario, server)[0] ?? {};
  const enc = stat(scenario, server, "cpu_s_per_m");
  const label = `encrypted ${profile} (${any.connected ?? "?"} sealed receivers)`;
  row(`${label}: server CPU-s / 1M`, enc, null, 3, judged ? "≤ 1.0 CPU-s/1M" : "info", judged ? (_r, ours) => ours <= 1.0 : null);
  if (has("fanout_1k")) {
    row(`${label}: vs our plaintext 1k`, enc, null, 3, judged ? "≤ 4× plaintext" : "info", judged ? (r) => r <= 4 : null, enc.med / plain1k.med);
  }
  row(`${label}: deliveries/s`, stat(scenario, server, "deliveries_per_s"), null, 0, "info", null);
  row(`${label}: p99 ms`, stat(scenario, server, "p99_ms"), null, 2, "info", null);
  row(`${label}: generator cores (decrypting)`, stat(scenario, server, "gen_cores"), null, 2, "info", null);
  row(`${label}: lost + duplicate`, stat(scenario, server, (r) => Number(r.lost) + Number(r.duplicates)), null, 0, "0", (_r, ours) => ours === 0);
}

// With the paced comparison (below) the unpinned windowed rows are information: their
// all-plaintext room is read by a generator that decrypts nothing, so faster, and a slower
// reader costs the server more per delivery whatever it sends (BENCHMARKS.md).
const paced = ["mixed_paced_encrypted", "mixed_paced_alternating"].some((sc) => pick(sc, "sealcast_v1_pinned").length > 0);
// Half the clients of a pinned room (ENC_CLIENTS / 2): the receivers each half holds.
const halfOf = (scenario) => Number(pick(scenario, "sealcast_v1_pinned")[0]?.clients ?? 1000) / 2;
if (has("mixed")) {
  const halfRuns = pick("mixed_sealed_half", "sealcast_v1");
  if (halfRuns.length) {
    // The mixed room minus its sealed half alone, from the same repetition: no per-delivery
    // figure of another run enters, and the generator decrypted the same amount in both.
    const direct = added("mixed", "mixed_sealed_half", "sealcast_v1");
    const target = paced ? "info" : "≤ 1× all-plaintext";
    row("mixed room (half sealed): plaintext CPU-s / 1M (mixed − sealed half alone, vs the all-plaintext 1k room)", direct, null, 3, target, paced ? null : (r) => r <= 1.0, direct.med / plain1k.med);
  }
  if (has("encrypted")) {
    const encPerM = stat("encrypted", "sealcast_v1", "cpu_s_per_m").med;
    // Server CPU in the mixed room minus what its sealed deliveries cost in the all-sealed
    // room leaves the plaintext receivers' share.
    const plainShare = (r) => {
      const d = Number(r.deliveries);
      const dEnc = (d * Number(r.encrypted)) / Number(r.connected);
      const dPlain = d - dEnc;
      return ((Number(r.server_cpu_s) - (dEnc * encPerM) / 1e6) / dPlain) * 1e6;
    };
    const mixed = stat("mixed", "sealcast_v1", plainShare);
    const judged = halfRuns.length === 0;
    row(`mixed room: plaintext CPU-s / 1M (derived from the all-sealed figure)`, mixed, null, 3, judged ? "≤ 1× all-plaintext" : "info", judged ? (r) => r <= 1.0 : null, mixed.med / plain1k.med);
  }
  row("mixed room: total CPU-s / 1M", stat("mixed", "sealcast_v1", "cpu_s_per_m"), null, 3, "info", null);
  const p99plain = stat("mixed", "sealcast_v1", "plain_p99_ms");
  row("mixed room: plaintext receivers p99 ms (vs all-plaintext 1k)", p99plain, null, 2, "info", null, p99plain.med / stat("fanout_1k", "sealcast", "p99_ms").med);
}

if (has("idle")) {
  const any = pick("idle", "sealcast")[0] ?? {};
  const label = `idle (${any.connected ?? "?"} authenticated)`;
  row(`${label}: server RSS per connection, bytes`, stat("idle", "sealcast", "rss_per_conn_b"), stat("idle", "bun", "rss_per_conn_b"), 0, "≤ 4096 B", (_r, ours) => ours <= 4096);
  row(`${label}: connect+auth/s`, stat("idle", "sealcast", "connect_per_s"), stat("idle", "bun", "connect_per_s"), 0, "≥ 1× Bun", (r) => r >= 1);
  pairsRow("idle", "sealcast", "connect_per_s", 2, (r) => r >= 1);
  const cpuPerConnect = (r) => (Number(r.connect_server_cpu_s) / Number(r.connected)) * 1e6;
  row(`${label}: server CPU-ms per 1k connect+auth`, stat("idle", "sealcast", cpuPerConnect), stat("idle", "bun", cpuPerConnect), 0, "info", null);
  if (pick("idle", "sealcast_pattern").length) {
    // The same server with the reference's pattern subscriptions (as the Bun baseline
    // subscribes): no SUBSCRIBE per user, so no Redis work per connection.
    row(`${label}, sealcast with pattern subscriptions: connect+auth/s`, stat("idle", "sealcast_pattern", "connect_per_s"), stat("idle", "bun", "connect_per_s"), 0, "info", null);
    row(`${label}, sealcast with pattern subscriptions: server CPU-ms per 1k connect+auth`, stat("idle", "sealcast_pattern", cpuPerConnect), stat("idle", "bun", cpuPerConnect), 0, "info", null);
  }
}

// The pinned comparisons of results files from before the alternating rooms (bench/run.sh's
// former pinned_halves, a server run per room): CPU-s / 1M that the plaintext half of
// `prefix`'s room adds next to sealed receivers (the room minus its sealed half alone, same
// repetition), against what it adds next to `others` (the same subtraction).
function pinnedRows(prefix, title, sealed, other, others) {
  const server = "sealcast_v1_pinned";
  const nextToSealed = added(`${prefix}_${sealed}`, `${prefix}_half_${sealed}`, server);
  const nextToOthers = added(`${prefix}_${other}`, `${prefix}_half_${other}`, server);
  const h = halfOf(`${prefix}_${sealed}`);
  row(`${title}: CPU-s / 1M that ${h} plaintext receivers add next to ${h} sealed (vs next to ${h} ${others})`, nextToSealed, null, 3, "≤ 1× all-plaintext", (r) => r <= 1.0, nextToSealed.med / nextToOthers.med);
  row(`… next to ${h} ${others}`, nextToOthers, null, 3, "info", null);
}

// The alternating comparisons (loadgen --alternate, one server run per repetition): each
// cycle's CPU-s / 1M that the plaintext receivers add next to sealed receivers and next to
// decoys, pooled over the repetitions' cycles; the pace compares the two mixed rooms' phases.
const numbers = (scenario, field) =>
  pick(scenario, "sealcast_v1_pinned").flatMap((r) => (r[field] ?? "").split(",").filter((x) => x !== "").map(Number));
const everyFourth = (xs, from) => xs.filter((_x, i) => i % 4 === from);
// The 95 % interval of median(a) / median(b) by bootstrap: each side's cycles resampled with
// replacement, 2,000 times, from a fixed seed so the same results print the same table.
function ratioInterval(a, b) {
  let seed = 0x5eca1ca5;
  const random = () => {
    // mulberry32
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const resample = (xs) => median(xs.map(() => xs[Math.floor(random() * xs.length)]));
  const ratios = Array.from({ length: 2000 }, () => resample(a) / resample(b)).filter(Number.isFinite).sort((x, y) => x - y);
  return [ratios[Math.floor(ratios.length * 0.025)], ratios[Math.floor(ratios.length * 0.975)]];
}
function alternatingRows(scenario, title) {
  const runsOf = pick(scenario, "sealcast_v1_pinned");
  if (runsOf.length === 0) return;
  const sealedCycles = numbers(scenario, "alt_next_to_sealed").filter(Number.isFinite);
  const decoyCycles = numbers(scenario, "alt_next_to_decoys").filter(Number.isFinite);
  const nextToSealed = pooled(sealedCycles);
  const nextToDecoys = pooled(decoyCycles);
  const h = Number(runsOf[0].encrypted);
  const label = `${title} (alternating rooms, ${nextToSealed.n} cycles in ${runsOf.length} runs)`;
  row(`${label}: CPU-s / 1M that ${h} plaintext receivers add next to ${h} sealed (vs next to ${h} decoys)`, nextToSealed, null, 3, "≤ 1× all-plaintext", (r) => r <= 1.0, nextToSealed.med / nextToDecoys.med);
  row(`… next to ${h} decoys`, nextToDecoys, null, 3, "info", null);
  if (sealedCycles.length > 1 && decoyCycles.length > 1) {
    const [low, high] = ratioInterval(sealedCycles, decoyCycles);
    rows.push([`… the ratio's 95 % interval (bootstrap over the cycles)`, "–", "–", `${low.toFixed(2)}–${high.toFixed(2)}×`, "info", ""]);
  }
  const walls = runsOf.map((r) => (r.alt_phase_wall_s ?? "").split(",").map(Number));
  const phaseWalls = (from) => pooled(walls.flatMap((w) => everyFourth(w, from)));
  const [mixedWalls, decoyWalls] = [phaseWalls(1), phaseWalls(3)];
  row(`… the pace: wall s of a mixed room's phase (vs the decoys' room's)`, mixedWalls, null, 3, "info", null, mixedWalls.med / decoyWalls.med);
}
alternatingRows("mixed_paced_alternating", "mixed room, isolated cores, windowed");
alternatingRows("mixed_isolated_alternating", `mixed room, isolated cores, ${process.env.ISOLATED_RATE ?? 150} msg/s`);

// Results files from before the alternating rooms (bench/run.sh until 2026-12-04 17:44Z): each
// room and its other half alone, in separate server runs.
if (paced && has("mixed_paced_encrypted")) {
  // Windowed: next to sealed receivers against next to decoys (plaintext receivers whose
  // client spends a decryption's CPU on each delivery), so both rooms are read at one pace.
  pinnedRows("mixed_paced", "mixed room, isolated cores, windowed", "encrypted", "decoy", "decoys");
  const wall = (scenario) => stat(scenario, "sealcast_v1_pinned", "wall_s");
  row(`… the pace: wall s of the mixed room (vs the decoys' room)`, wall("mixed_paced_encrypted"), null, 2, "info", null, wall("mixed_paced_encrypted").med / wall("mixed_paced_decoy").med);
}

// One fixed rate, so messages arrive alike. Results files from before the decoys (bench/run.sh
// before 2026-12-04) named the runs by the sealed share, and compared with plaintext neighbours.
const isolated = has("mixed_isolated_encrypted") ? ["encrypted", "decoy", "decoys"] : ["0.5", "0", "plaintext"];
if (has(`mixed_isolated_${isolated[0]}`)) {
  const rate = process.env.ISOLATED_RATE ?? 150;
  pinnedRows("mixed_isolated", `mixed room, isolated cores, ${rate} msg/s`, ...isolated);
}

const heads = ["metric", "sealcast", "raw Bun", "ratio", "target", "met"];
const out = [heads, heads.map(() => "---"), ...rows];
console.log(header.replace(/^# ?/, "run: "));
for (const r of out) console.log(`| ${r.join(" | ")} |`);
const failedRuns = runs.filter(broken).map((r) => r.label ?? `${r.scenario}/${r.server}/${r.rep}`);
if (failedRuns.length) console.log(`\nfailed runs (left out): ${failedRuns.join(", ")}`);
