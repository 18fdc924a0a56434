#!/usr/bin/env node
// workload-bench.cjs: LangGraph's own checkpoint workload, driven through the
// real JS checkpointer (@langchain/langgraph-checkpoint-postgres, PostgresSaver,
// from the npm tree tests/js/install.sh makes), against one database.
// bench/workload-bench.sh runs it against two clusters side by side and
// compares them; it is not meant to be run alone.
//
//   node workload-bench.cjs --uri URI --writers N --payload BYTES
//        --seconds S [--max-steps K] [--label TEXT]
//
// N writers share one pg.Pool of N connections (the application's pool), each
// on a thread of its own, and repeat LangGraph's superstep until S seconds have
// passed (or K steps each): getTuple (the latest checkpoint, with its channel
// values), putWrites (one pending write of BYTES) and put (a new checkpoint
// whose "messages" channel is a JSON value of BYTES). The values are message
// lists of English-like text, so that compression does what it does for real
// payloads. The password comes from $PGPASSFILE (node-postgres reads it).
// Prints one JSON object: steps, seconds, steps per second, the client's own
// CPU seconds over the steps (user + system: near "seconds", this single
// Node.js thread is what limits the run), and per operation the count, p50
// and p99 in milliseconds. Exit 0, 1 on a failed operation,
// 64 on a usage error.
'use strict';

const EXIT_USAGE = 64;

function usage(message) {
  process.stderr.write(`workload-bench: ${message}\n` +
    'usage: workload-bench.cjs --uri URI --writers N --payload BYTES --seconds S [--max-steps K] [--label TEXT]\n');
  process.exit(EXIT_USAGE);
}

function parseArgs(argv) {
  const opts = { label: '', max_steps: '0' };
  const known = new Set(['--uri', '--writers', '--payload', '--seconds', '--max-steps', '--label']);
  for (let i = 0; i < argv.length; i += 2) {
    if (!known.has(argv[i])) usage(`unknown argument "${argv[i]}"`);
    if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`);
    opts[argv[i].slice(2).replace('-', '_')] = argv[i + 1];
  }
  for (const k of ['uri', 'writers', 'payload', 'seconds']) {
    if (!opts[k]) usage(`--${k} is missing`);
  }
  for (const k of ['writers', 'payload', 'seconds', 'max_steps']) {
    if (!/^[0-9]+$/.test(opts[k])) usage(`--${k.replace('_', '-')} must be a whole number`);
    opts[k] = Number(opts[k]);
  }
  if (/:[^@/]*@/.test(opts.uri)) usage('the URI must not hold a password (use PGPASSFILE)');
  return opts;
}

const WORDS = ('the agent checkpoint state message tool call result user assistant system thread graph node ' +
  'value channel version write pending task step search weather report summary answer question context ' +
  'memory plan retrieve document chunk embedding score ranking reply draft review approve reject retry ' +
  'error timeout latency request response token model prompt completion function argument schema').split(' ');

// text(bytes, seed): English-like text of that length, different for each seed.
function text(bytes, seed) {
  let x = seed * 2654435761 % 4294967296 || 1;
  const parts = [];
  let n = 0;
  while (n < bytes) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const w = WORDS[x % WORDS.length] + ((x >> 8) % 7 === 0 ? `-${x % 1000} ` : ' ');
    parts.push(w);
    n += w.length;
  }
  return parts.join('').slice(0, bytes);
}

// A message list whose JSON is about BYTES long.
function messages(bytes, seed) {
  const per = Math.min(bytes, 4000);
  const list = [];
  let n = 2;
  for (let i = 0; n < bytes; i += 1) {
    const content = text(Math.max(1, Math.min(per, bytes - n - 60)), seed + i);
    list.push({ type: i % 2 ? 'ai' : 'human', id: `m-${seed}-${i}`, content });
    n += content.length + 60;
  }
  return list;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return Math.round(sorted[Math.max(0, i)] * 100) / 100;
}

async function writer(m, saver, id, opts, deadline, lat, payloads) {
  const threadId = `bench-${opts.label}-${process.pid}-${id}`;
  let config = { configurable: { thread_id: threadId, checkpoint_ns: '' } };
  let steps = 0;
  const values = [payloads[(id + 0) % 4], payloads[(id + 1) % 4]];
  const write = [payloads[(id + 2) % 4], payloads[(id + 3) % 4]];
  while (Date.now() < deadline && (opts.max_steps === 0 || steps < opts.max_steps)) {
    const step = steps + 1;
    let t = process.hrtime.bigint();
    await saver.getTuple(config);
    lat.get_tuple.push(Number(process.hrtime.bigint() - t) / 1e6);

    const cp = m.base.emptyCheckpoint();
    cp.id = m.base.uuid6(step);
    cp.channel_values = { messages: values[step % 2] };
    cp.channel_versions = { messages: step };
    const task = `task-${step}`;
    if (step > 1) {
      t = process.hrtime.bigint();
      await saver.putWrites(config, [['messages', write[step % 2]]], task);
      lat.put_writes.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    t = process.hrtime.bigint();
    config = await saver.put(config, cp, { source: 'loop', step, parents: {} }, { messages: step });
    lat.put.push(Number(process.hrtime.bigint() - t) / 1e6);
    steps += 1;
  }
  return steps;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const m = {
    pg: require('pg'),
    saver: require('@langchain/langgraph-checkpoint-postgres'),
    base: require('@langchain/langgraph-checkpoint'),
  };
  const pool = new m.pg.Pool({ connectionString: opts.uri, max: opts.writers, application_name: 'workload-bench' });
  const saver = new m.saver.PostgresSaver(pool);
  const lat = { get_tuple: [], put_writes: [], put: [] };
  // The values are made before the clock runs (their making is not measured),
  // four of them, shared by the writers: 20 writers x 4 values of 20 MB
  // would take gigabytes of JavaScript strings.
  const payloads = [1, 2, 3, 4].map((seed) => messages(opts.payload, seed * 7919));
  // The pool's connections are opened (SCRAM logins) before the clock too, as
  // an application's pool is warm when its steps run.
  const clients = await Promise.all(Array.from({ length: opts.writers }, () => pool.connect()));
  clients.forEach((c) => c.release());
  const started = Date.now();
  const cpu0 = process.cpuUsage();
  const deadline = started + opts.seconds * 1000;
  let steps = 0;
  try {
    const counts = await Promise.all(Array.from({ length: opts.writers },
      (_, i) => writer(m, saver, i, opts, deadline, lat, payloads)));
    steps = counts.reduce((a, b) => a + b, 0);
  } finally {
    await pool.end();
  }
  const seconds = (Date.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const out = {
    label: opts.label, writers: opts.writers, payload: opts.payload, steps, seconds,
    steps_per_second: steps / seconds, client_cpu_s: (cpu.user + cpu.system) / 1e6,
  };
  for (const [op, list] of Object.entries(lat)) {
    list.sort((a, b) => a - b);
    out[op] = { count: list.length, p50_ms: percentile(list, 50), p99_ms: percentile(list, 99) };
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

main().catch((err) => {
  process.stderr.write(`workload-bench: ${err.stack || err}\n`);
  process.exit(1);
});
