// Node's fetch, all URLs at once (undici opens a connection per request in flight), for
// scripts/bench.sh. Prints {"ok", "wall_s", "loop_delay_max_ms", "tick_late_max_ms"}: the wall
// time from the first fetch() to the last body, and the event loop's longest delay over that
// time (perf_hooks.monitorEventLoopDelay, 5 ms resolution): a connect() that blocks shows here.
// tick_late_max_ms is the same seen from JavaScript (how late a 5 ms setInterval ran), a check.
//
//   node benches/eventloop.js URL...
'use strict';
const { monitorEventLoopDelay } = require('perf_hooks');

async function main(urls) {
  // undici is loaded on the first fetch(): not the gateway's time, so a data: URL first.
  await (await fetch('data:,warm')).text();
  const h = monitorEventLoopDelay({ resolution: 5 });
  h.enable();
  let last = process.hrtime.bigint(), late = 0;
  const tick = setInterval(() => {
    const now = process.hrtime.bigint();
    late = Math.max(late, Number(now - last) / 1e6 - 5);
    last = now;
  }, 5);
  // The histogram records the time between two of its timer's callbacks: a loop blocked before
  // its first callback goes unrecorded. So it runs a few ticks before the requests start.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const t0 = process.hrtime.bigint();
  const bodies = await Promise.all(urls.map(async (u) => (await fetch(u)).text()));
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  h.disable();
  clearInterval(tick);
  const ok = bodies.filter((b) => b.trim() === 'ok').length;
  console.log(JSON.stringify({ ok, n: urls.length, wall_s: wall, loop_delay_max_ms: h.max / 1e6, tick_late_max_ms: late }));
  if (ok !== urls.length) process.exit(1);
}

main(process.argv.slice(2)).catch((e) => {
  console.error(e, e.cause);
  process.exit(1);
});
