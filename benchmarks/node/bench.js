// The workloads on the Node.js original (p2p-manager@0.1.0 on p2p-node@0.1.1), driven by
// p2p_bench --impl node. Prints "port N" once listening, then one JSON line.
//   node bench.js WORKLOAD '{"peers":P,"size":S,"count":N,"rounds":R,"hosts":[...]}'
// Workarounds for the original's bugs (harness side, the package is not patched):
//  - PeerManager emits 'error' for every report: without a listener Node would throw.
//  - send(..., answer, callback) adds a listener per peer per call and never removes it
//    (O(rounds) listeners per peer): answers are counted on the manager's
//    'answerMessage' event instead, and send() is called without a callback.
//  - addPool(host, port) passes the port to addActive, which ignores it: connect uses
//    addActive([[host, port], ...]) directly.
'use strict';
const { PeerManager } = require('p2p-manager');

const workload = process.argv[2];
const cfg = JSON.parse(process.argv[3] || '{}');
const now = () => Number(process.hrtime.bigint()) / 1e3;  // microseconds
const out = (o) => { process.stdout.write(JSON.stringify(Object.assign({ impl: 'node', workload }, o)) + '\n'); process.exit(0); };
const quantile = (v, q) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.round(q * (s.length - 1)))]; };
const payload = (n) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = (i * 131 + 7) & 255; return b; };
setTimeout(() => { process.stderr.write('node: time limit\n'); process.exit(1); }, 120000).unref();

const mgr = new PeerManager({ listen: workload !== 'connect', port: 0, minPeers: 0, maxPeers: 100000 });
mgr.on('error', () => {});

if (workload === 'connect') {
  const hosts = cfg.hosts.map((h) => { const i = h.lastIndexOf(':'); return [h.slice(0, i), +h.slice(i + 1)]; });
  let connected = 0;
  let t0;
  mgr.on('peerConnect', () => {
    if (++connected === hosts.length) out({ peers: hosts.length, connects_per_s: hosts.length / ((now() - t0) / 1e6) });
  });
  mgr.launch(false);
  t0 = now();
  mgr.addActive(hosts);
} else {
  const want = (workload === 'fanout' || workload === 'idle') ? cfg.peers : 1;
  const peers = [];
  let rss0 = 0;
  mgr.on('listenConnect', (d) => {
    peers.push(d.peer);
    if (peers.length === want) setImmediate(start);
  });
  mgr.launch(false);
  mgr.server.on('listening', () => {
    rss0 = process.memoryUsage().rss;
    process.stdout.write(`port ${mgr.server.address().port}\n`);
  });

  function start() {
    if (workload === 'pingpong') {
      const p = peers[0]; const body = payload(32); const lat = []; let t0 = 0; let i = 0;
      const total = cfg.rounds + 100;
      mgr.on('pongMessage', () => {
        if (i >= 100) lat.push(now() - t0);
        if (++i === total) return out({ rounds: cfg.rounds, p50_us: quantile(lat, 0.5), p99_us: quantile(lat, 0.99) });
        t0 = now(); p.send('ping', body);
      });
      t0 = now(); p.send('ping', body);
    } else if (workload === 'stream') {
      let frames = 0; let bytes = 0; const t0 = now();
      mgr.on('blkMessage', (d) => {
        frames++; bytes += d.data.length;
        if (frames === cfg.count) {
          const dt = (now() - t0) / 1e6;
          out({ size: cfg.size, count: cfg.count, frames_per_s: frames / dt, mb_per_s: bytes / dt / 1e6 });
        }
      });
      peers[0].send('go');
    } else if (workload === 'fanout') {
      const body = payload(32); const lat = []; let answers = 0; let round = 0; let t0 = 0; let start = 0;
      const warmup = 3; const total = cfg.rounds + warmup;
      const next = () => { answers = 0; t0 = now(); if (round === warmup) start = t0; mgr.send('all', 'state', 'connected', 'knock', body); };
      mgr.on('answerMessage', () => {
        if (++answers < cfg.peers) return;
        if (round >= warmup) lat.push(now() - t0);
        if (++round === total) {
          return out({ peers: cfg.peers, rounds: cfg.rounds, rounds_per_s: cfg.rounds / ((now() - start) / 1e6), p50_us: quantile(lat, 0.5), p99_us: quantile(lat, 0.99) });
        }
        next();
      });
      next();
    } else if (workload === 'idle') {
      setTimeout(() => out({ peers: cfg.peers, rss_per_peer_bytes: (process.memoryUsage().rss - rss0) / cfg.peers }), 300);
    }
  }
}
