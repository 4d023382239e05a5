// Messaging between two processes in Node.js: child_process IPC with
// serialization 'advanced' (the structured clone), the peer of
// bench/remote.lua. Each round measures, in this order:
//   pingpong  the parent sends a small object to the child, which sends it
//             back; the next goes when it is back (seconds per round trip)
//   oneway    the child sends `oneway` small objects {i, name} to the
//             parent, which counts them (seconds per message)
// Prints "<measure> <seconds>" per measure and round, after one untimed
// warm-up round. The child is started once, before the warm-up.
//
//   node bench/remote.js [pingpong] [oneway] [rounds]

'use strict';
const { fork } = require('child_process');

if (process.argv[2] === 'child') {
  process.on('message', (m) => {
    if (typeof m === 'number') {
      for (let i = 1; i <= m; i++) process.send({ i, name: 'x' });
    } else if (m === 'bye') {
      process.disconnect();
    } else {
      process.send(m);
    }
  });
} else {
  const PINGPONG = Number(process.argv[2] || 2000);
  const ONEWAY = Number(process.argv[3] || 50000);
  const ROUNDS = Number(process.argv[4] || 3);
  const now = () => Number(process.hrtime.bigint()) / 1e9;
  const child = fork(__filename, ['child'], { serialization: 'advanced' });
  let on = null;
  child.on('message', (m) => on(m));

  const pingpong = (n) => new Promise((resolve) => {
    let left = n;
    const t0 = now();
    on = (m) => {
      if (m.name !== 'ping') throw new Error('bad echo');
      if (--left > 0) child.send(m);
      else resolve((now() - t0) / n);
    };
    child.send({ id: 1, name: 'ping' });
  });

  const oneway = (n) => new Promise((resolve) => {
    let got = 0;
    const t0 = now();
    on = (m) => {
      if (m.i !== ++got) throw new Error(`message ${m.i}, expected ${got}`);
      if (got === n) resolve((now() - t0) / n);
    };
    child.send(n);
  });

  (async () => {
    for (let r = 0; r <= ROUNDS; r++) {
      const pp = await pingpong(PINGPONG);
      const ow = await oneway(ONEWAY);
      if (r > 0) {
        console.log(`pingpong ${pp}`);
        console.log(`oneway ${ow}`);
      }
    }
    child.send('bye');
  })();
}
