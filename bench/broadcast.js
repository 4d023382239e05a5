// BroadcastChannel delivery across threads in Node.js, the peer of
// bench/broadcast.lua: `listeners` workers each open BroadcastChannel
// "bench" and count; the main thread posts `messages` small objects
// ({ i, name }) on its own channel of that name; a round ends when every
// worker has counted them all and said so on parentPort. Prints one line
// per round, "round <seconds>", after one untimed warm-up round. Workers
// are started once and not timed.
//
//   node bench/broadcast.js <listeners> <messages> <rounds>

'use strict';
const { Worker, BroadcastChannel } = require('worker_threads');

const LISTENERS = Number(process.argv[2] || 4);
const MESSAGES = Number(process.argv[3] || 20000);
const ROUNDS = Number(process.argv[4] || 3);

const LISTENER = `
const { parentPort, workerData } = require('worker_threads');
const bc = new BroadcastChannel('bench');
let got = 0;
bc.onmessage = (e) => {
  if (e.data.i !== got + 1) throw new Error('out of order');
  got++;
  if (got === workerData) { got = 0; parentPort.postMessage('done'); }
};
parentPort.on('message', (m) => { if (m === 'stop') { bc.close(); parentPort.close(); } });
parentPort.postMessage('ready');
`;

async function main() {
  const bc = new BroadcastChannel('bench');
  const workers = [];
  let ready = 0;
  let done = 0;
  let finish = null;
  await new Promise((resolve) => {
    for (let k = 0; k < LISTENERS; k++) {
      const w = new Worker(LISTENER, { eval: true, workerData: MESSAGES });
      w.on('message', (m) => {
        if (m === 'ready') { if (++ready === LISTENERS) resolve(); }
        else if (++done === LISTENERS) { done = 0; finish(); }
      });
      w.on('error', (e) => { console.error(e); process.exit(1); });
      workers.push(w);
    }
  });
  const round = () => new Promise((resolve) => {
    const t0 = process.hrtime.bigint();
    finish = () => resolve(Number(process.hrtime.bigint() - t0) / 1e9);
    for (let i = 1; i <= MESSAGES; i++) bc.postMessage({ i, name: 'x' });
  });
  await round();  // warm-up
  for (let r = 0; r < ROUNDS; r++) console.log('round ' + (await round()));
  bc.close();
  for (const w of workers) w.postMessage('stop');
}

main();
