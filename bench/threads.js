// Cross-thread messaging in Node.js with worker_threads, the peer of
// bench/threads.lua. Each round measures, in this order:
//   pingpong  main posts a small object to a worker, which echoes it on
//             parentPort; the next goes when the echo is back
//             (seconds per round trip)
//   oneway    a worker posts `oneway` small objects {i, name} to the main
//             thread, which counts them (seconds per message)
//   transfer  a `mib` MiB ArrayBuffer posted with a transfer list, until
//             the worker acknowledges it (seconds)
//   copy      the same ArrayBuffer posted without one: a structured clone
//             (seconds)
// Prints one line per measure and round, "<measure> <seconds>", after one
// untimed warm-up round, then "median <measure> <seconds>" for each.
// Workers are started once, before the warm-up, and not timed.
//
//   node bench/threads.js [pingpong] [oneway] [mib] [rounds]

'use strict';
const { Worker } = require('worker_threads');

const PINGPONG = Number(process.argv[2] || 2000);
const ONEWAY = Number(process.argv[3] || 50000);
const MIB = Number(process.argv[4] || 64);
const ROUNDS = Number(process.argv[5] || 15);
const PAGE = 4096;

const ECHO = `
const { parentPort } = require('worker_threads');
parentPort.on('message', (m) => parentPort.postMessage(m));
`;
const SENDER = `
const { parentPort } = require('worker_threads');
parentPort.on('message', (n) => {
  for (let i = 1; i <= n; i++) parentPort.postMessage({ i, name: 'x' });
});
`;
const SINK = `
const { parentPort } = require('worker_threads');
parentPort.on('message', (ab) => parentPort.postMessage(ab.byteLength));
`;

function now() {
  return Number(process.hrtime.bigint()) / 1e9;
}

// One persistent 'message' listener per worker; each round sets `on`.
function start(code) {
  const w = new Worker(code, { eval: true });
  w.on('error', (e) => { throw e; });
  w.on('message', (m) => w.on_message(m));
  return w;
}

function pingpong(w, n) {
  return new Promise((resolve) => {
    let left = n;
    const t0 = now();
    w.on_message = (m) => {
      if (m.name !== 'ping') throw new Error('bad echo');
      if (--left > 0) w.postMessage(m);
      else resolve((now() - t0) / n);
    };
    w.postMessage({ id: 1, name: 'ping' });
  });
}

function oneway(w, n) {
  return new Promise((resolve) => {
    let got = 0;
    const t0 = now();
    w.on_message = (m) => {
      if (m.i !== ++got) throw new Error(`message ${m.i}, expected ${got}`);
      if (got === n) resolve((now() - t0) / n);
    };
    w.postMessage(n);
  });
}

// Pages written before the clock starts, so neither side copies the
// zero page.
function buffer(w, transfer) {
  const size = MIB * 1024 * 1024;
  const ab = new ArrayBuffer(size);
  const u = new Uint8Array(ab);
  for (let i = 0; i < size; i += PAGE) u[i] = 1;
  return new Promise((resolve) => {
    let t0;
    w.on_message = (len) => {
      const t = now() - t0;
      if (len !== size) throw new Error(`worker got ${len} bytes`);
      if (transfer && ab.byteLength !== 0) throw new Error('not detached');
      resolve(t);
    };
    t0 = now();
    if (transfer) w.postMessage(ab, [ab]);
    else w.postMessage(ab);
  });
}

function median(list) {
  const s = list.slice().sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

(async () => {
  const echo = start(ECHO);
  const sender = start(SENDER);
  const sink = start(SINK);
  const samples = { pingpong: [], oneway: [], transfer: [], copy: [] };
  for (let r = -1; r < ROUNDS; r++) { // round -1: warm-up
    const got = {
      pingpong: await pingpong(echo, PINGPONG),
      oneway: await oneway(sender, ONEWAY),
      transfer: await buffer(sink, true),
      copy: await buffer(sink, false),
    };
    if (r < 0) continue;
    for (const k of Object.keys(got)) {
      samples[k].push(got[k]);
      console.log(k, got[k]);
    }
  }
  for (const k of Object.keys(samples)) {
    console.log('median', k, median(samples[k]));
  }
  await Promise.all([echo, sender, sink].map((w) => w.terminate()));
})();
