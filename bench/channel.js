// In-thread MessageChannel throughput in Node.js, the peer of
// bench/channel.lua: post `batch` small objects on port1, then wait until
// port2's onmessage has seen them all. Prints one line per round,
// "round <seconds per message>", then "median <seconds per message>".
//
//   node bench/channel.js [batch] [rounds]

'use strict';
const { MessageChannel } = require('worker_threads');

const batch = Number(process.argv[2] || 20000);
const rounds = Number(process.argv[3] || 15);
const { port1, port2 } = new MessageChannel();

function message() {
  return { id: 1, name: 'hello', tags: ['a', 'b'], pos: { x: 1.5, y: -2 } };
}

function round() {
  return new Promise((resolve) => {
    let got = 0;
    const msg = message();
    const t0 = process.hrtime.bigint();
    port2.onmessage = (e) => {
      if (e.data.pos.y !== -2) throw new Error('bad message');
      if (++got === batch) resolve(Number(process.hrtime.bigint() - t0) / 1e9);
    };
    for (let i = 0; i < batch; i++) port1.postMessage(msg);
  });
}

(async () => {
  await round(); // warm-up
  const samples = [];
  for (let r = 0; r < rounds; r++) {
    const t = await round();
    samples.push(t / batch);
    console.log('round', t / batch);
  }
  samples.sort((a, b) => a - b);
  const mid = samples.length >> 1;
  const median = samples.length % 2 ? samples[mid]
    : (samples[mid - 1] + samples[mid]) / 2;
  console.log('median', median);
  port1.close();
})();
