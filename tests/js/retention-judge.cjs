#!/usr/bin/env node
// retention-judge.cjs: the real LangGraph JS checkpointer (PostgresSaver)
// judges what `checkpoint-agent prune` did. It writes threads through the
// client's own put/putWrites (ids from the client's UUIDv6 generator,
// backdated), records what getTuple, list and getDeltaChannelHistory return,
// and after the prune compares. tests/t2002-langgraph-js-retention.sh and
// tests/t7001-prune.sh run it. One JSON object on stdout; exit 0 when every
// comparison held, 1 when one did not (the JSON lists them), 64 on a usage
// error.
//
//   node retention-judge.cjs --action ACTION --uri URI [--schema S] [options]
//
//   seed           --prefix P --count N --age-days D [--kind plain|legacy|delta]
//                  threads P1..PN whose newest checkpoint is D days old:
//                    plain   6 steps in the root namespace and 3 in a subgraph
//                            namespace; "messages" changes at every step,
//                            "counter" at every second one, "config" once;
//                            pending writes on every checkpoint
//                    legacy  checkpoints of format v1, whose pending sends the
//                            saver rebuilds from the parent's __pregel_tasks
//                            writes
//                    delta   "messages" as a delta channel: no stored value,
//                            each step's messages as writes, rebuilt by
//                            getDeltaChannelHistory
//   capture        --threads a,b --file F   what the client sees of each thread
//   verify-latest  --file F   getTuple of every namespace is exactly as
//                  captured, list gives one checkpoint per namespace (the
//                  captured newest), delta histories are unchanged
//   verify-same    --file F   everything as captured, list included
//   verify-gone    --threads a,b   getTuple finds nothing, list is empty
//   writer         --threads a,b --duration-ms N --file F   puts checkpoints
//                  into these threads round-robin for N ms, one at least
//                  (each holding every channel's value, and a pending
//                  write); appends each committed one to F
//   verify-written --file F   getTuple of every checkpoint the writer
//                  committed returns exactly what it wrote
//
// The password comes from $PGPASSFILE (or --password-file), as in
// langgraph-client.cjs, whose connection helpers this uses.
'use strict';

const fs = require('fs');
const util = require('util');
const { loadModules, connectionConfig } = require('./langgraph-client.cjs');

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 64;
const DAY_MS = 86400000;
const ACTIONS = ['seed', 'capture', 'verify-latest', 'verify-same', 'verify-gone', 'writer', 'verify-written'];

function usage(message) {
  process.stderr.write(`retention-judge: ${message}\n` +
    `usage: retention-judge.cjs --action ${ACTIONS.join('|')} --uri URI [--schema S] [--threads a,b] ` +
    '[--file F] [--prefix P] [--count N] [--age-days D] [--kind plain|legacy|delta] [--duration-ms N]\n');
  process.exit(EXIT_USAGE);
}

function parseArgs(argv) {
  const opts = { schema: 'public', kind: 'plain' };
  const known = new Set(['--action', '--uri', '--schema', '--threads', '--file', '--prefix', '--count', '--age-days',
    '--kind', '--duration-ms', '--password-file']);
  for (let i = 0; i < argv.length; i += 2) {
    if (!known.has(argv[i])) usage(`unknown argument "${argv[i]}"`);
    if (i + 1 >= argv.length) usage(`${argv[i]} needs a value`);
    opts[argv[i].slice(2).replace(/-/g, '_')] = argv[i + 1];
  }
  if (!ACTIONS.includes(opts.action)) usage(`--action must be one of ${ACTIONS.join(', ')}`);
  if (!opts.uri) usage('--uri is needed');
  if (new URL(opts.uri).password) usage('the URI holds a password; use $PGPASSFILE or --password-file');
  if (!['plain', 'legacy', 'delta'].includes(opts.kind)) usage(`--kind ${opts.kind}: plain, legacy or delta`);
  opts.threads = opts.threads ? opts.threads.split(',').filter((t) => t) : [];
  return opts;
}

// ---- writing threads the way a graph run does ----

// A checkpoint as the client makes one, at time MS (backdated), with the client's own UUIDv6.
function checkpointAt(m, uuid, ms, step, values, versions, v) {
  const cp = m.base.emptyCheckpoint();
  cp.v = v;
  cp.id = uuid.v6({ clockseq: (step + 16) & 0x3fff, msecs: Math.floor(ms), nsecs: 0 });
  cp.ts = new Date(ms).toISOString();
  cp.channel_values = values;
  cp.channel_versions = { ...versions };
  cp.versions_seen = { agent: { messages: Math.max(0, (versions.messages || 1) - 1) } };
  return cp;
}

// One namespace's steps. Channels change at different steps, so a late
// checkpoint's values come from blobs written at several earlier steps.
async function writeNamespace(m, uuid, saver, threadId, ns, baseMs, steps, kind, parents) {
  let config = { configurable: { thread_id: threadId, checkpoint_ns: ns } };
  const versions = {};
  let messages = [];
  let counter = 0;
  const ids = [];
  for (let step = 0; step < steps; step += 1) {
    const ms = baseMs + step * 60000;
    const newVersions = {};
    const bump = (ch) => { versions[ch] = (versions[ch] || 0) + 1; newVersions[ch] = versions[ch]; };
    messages = [...messages, `${ns || 'root'} message ${step}`];
    bump('messages');
    if (step % 2 === 0) {
      counter += 1;
      bump('counter');
    }
    if (step === 0) bump('config');
    const values = { counter, config: { model: 'judge', temperature: 0.5, ns } };
    // A delta channel stores no value: the saver writes an 'empty' blob for
    // its new version, and the messages live in the writes.
    if (kind !== 'delta') values.messages = messages;
    const cp = checkpointAt(m, uuid, ms, step, values, versions, kind === 'legacy' ? 1 : 4);
    const meta = { source: step === 0 ? 'input' : 'loop', step: step - 1, parents, writes: { agent: { step } } };
    config = await saver.put(config, cp, meta, newVersions);
    ids.push(cp.id);
    // Writes of the task run from this checkpoint (what produced the next one).
    await saver.putWrites(config, [['messages', `${ns || 'root'} message ${step + 1}`], ['counter', counter + 1]],
      `task-${ns || 'root'}-${step}`);
    if (kind === 'legacy' && step === steps - 2) {
      await saver.putWrites(config, [[m.base.TASKS, { node: 'tool', args: { step } }]], `send-${step}`);
    }
  }
  await saver.putWrites(config, [['__error__', { message: `interrupted at ${ns || 'root'}` }]], 'task-error');
  return ids;
}

async function actionSeed(m, saver, opts, result) {
  const uuid = require('@langchain/core/utils/uuid');
  const count = Number.parseInt(opts.count || '1', 10);
  const ageMs = Number.parseFloat(opts.age_days || '0') * DAY_MS;
  result.threads = [];
  for (let n = 1; n <= count; n += 1) {
    const threadId = `${opts.prefix || 'thread-'}${n}`;
    const rootSteps = 6;
    // The root's newest checkpoint is the thread's newest: AGE old.
    const rootBase = Date.now() - ageMs - (rootSteps - 1) * 60000;
    const rootIds = await writeNamespace(m, uuid, saver, threadId, '', rootBase, rootSteps, opts.kind, {});
    if (opts.kind === 'plain') {
      await writeNamespace(m, uuid, saver, threadId, `child:${n}`, rootBase + 30000, 3, 'plain',
        { '': rootIds[2] });
    }
    result.threads.push(threadId);
  }
}

// ---- what the client sees ----

// JSON with sorted keys: two reads of the same state compare equal as text.
function canonical(value) {
  return JSON.stringify(value, (key, v) => (v && typeof v === 'object' && !Array.isArray(v)
    ? Object.keys(v).sort().reduce((o, k) => { o[k] = v[k]; return o; }, {}) : v));
}

async function collect(iterable) {
  const out = [];
  for await (const item of iterable) out.push(item);
  return out;
}

async function seeThread(saver, threadId) {
  const all = await collect(saver.list({ configurable: { thread_id: threadId } }));
  const namespaces = [...new Set(all.map((t) => t.config.configurable.checkpoint_ns))].sort();
  const state = { list: all.map((t) => `${t.config.configurable.checkpoint_ns}/${t.checkpoint.id}`), namespaces: {} };
  for (const ns of namespaces) {
    const config = { configurable: { thread_id: threadId, checkpoint_ns: ns } };
    const tuple = await saver.getTuple(config);
    state.namespaces[ns] = canonical(tuple);
    // A delta channel (no stored value): its state is what the history walk rebuilds.
    if (!Object.prototype.hasOwnProperty.call(tuple.checkpoint.channel_values, 'messages')) {
      const history = await saver.getDeltaChannelHistory({ config: tuple.config, channels: ['messages'] });
      state.namespaces[`${ns}#messages-history`] = canonical(history);
    }
  }
  return state;
}

async function actionCapture(m, saver, opts, result) {
  const captured = {};
  for (const t of opts.threads) captured[t] = await seeThread(saver, t);
  fs.writeFileSync(opts.file, JSON.stringify(captured));
  result.captured = Object.fromEntries(Object.entries(captured).map(([t, s]) => [t, s.list.length]));
}

function differ(result, what, expected, got) {
  result.mismatches.push({ what, expected, got });
}

async function actionVerify(m, saver, opts, result, wholeList) {
  const captured = JSON.parse(fs.readFileSync(opts.file, 'utf8'));
  result.mismatches = [];
  result.checked = 0;
  for (const [threadId, before] of Object.entries(captured)) {
    const now = await seeThread(saver, threadId);
    for (const [key, value] of Object.entries(before.namespaces)) {
      result.checked += 1;
      if (now.namespaces[key] !== value) differ(result, `${threadId} ${key}`, value, now.namespaces[key]);
    }
    // keep-latest: one checkpoint per namespace, the newest one captured.
    const newest = Object.keys(before.namespaces).filter((k) => !k.includes('#'))
      .map((ns) => `${ns}/${JSON.parse(before.namespaces[ns]).checkpoint.id}`).sort();
    const expectedList = wholeList ? before.list : newest;
    const gotList = wholeList ? now.list : [...now.list].sort();
    if (!util.isDeepStrictEqual(gotList, expectedList)) differ(result, `${threadId} list`, expectedList, gotList);
  }
  if (result.mismatches.length > 0) throw new Error(`${result.mismatches.length} differences`);
}

async function actionVerifyGone(m, saver, opts, result) {
  result.mismatches = [];
  for (const threadId of opts.threads) {
    const all = await collect(saver.list({ configurable: { thread_id: threadId } }));
    const latest = await saver.getTuple({ configurable: { thread_id: threadId, checkpoint_ns: '' } });
    if (all.length !== 0) differ(result, `${threadId} list`, 0, all.length);
    if (latest !== undefined) differ(result, `${threadId} getTuple`, undefined, latest.checkpoint.id);
  }
  if (result.mismatches.length > 0) throw new Error(`${result.mismatches.length} threads still there`);
}

// ---- a writer racing the prune ----

async function actionWriter(m, saver, opts, result) {
  const end = Date.now() + Number.parseInt(opts.duration_ms || '3000', 10);
  const out = fs.openSync(opts.file, 'a');
  let n = 0;
  try {
    do {
      const threadId = opts.threads[n % opts.threads.length];
      const base = { configurable: { thread_id: threadId, checkpoint_ns: '' } };
      const latest = await saver.getTuple(base);
      const versions = latest ? latest.checkpoint.channel_versions : {};
      const next = Math.max(0, ...Object.values(versions).map(Number)) + 1;
      const values = { messages: [`written ${n}`], counter: n, config: { writer: true } };
      const cp = m.base.emptyCheckpoint();
      cp.id = m.base.uuid6(n & 0x3fff);
      cp.channel_values = values;
      cp.channel_versions = { messages: next, counter: next, config: next };
      const newVersions = { ...cp.channel_versions };
      const config = await saver.put(latest ? latest.config : base, cp, { source: 'loop', step: n, parents: {} },
        newVersions);
      await saver.putWrites(config, [['messages', `pending ${n}`]], `writer-${n}`);
      fs.writeSync(out, `${JSON.stringify({ thread: threadId, id: cp.id, values, write: `pending ${n}` })}\n`);
      n += 1;
    } while (Date.now() < end);
  } finally {
    fs.closeSync(out);
  }
  result.written = n;
}

async function actionVerifyWritten(m, saver, opts, result) {
  const lines = fs.readFileSync(opts.file, 'utf8').split('\n').filter((l) => l);
  result.mismatches = [];
  result.checked = lines.length;
  for (const line of lines) {
    const w = JSON.parse(line);
    const t = await saver.getTuple({ configurable: { thread_id: w.thread, checkpoint_ns: '', checkpoint_id: w.id } });
    if (t === undefined) {
      differ(result, `${w.thread} ${w.id}`, 'the checkpoint', 'nothing');
      continue;
    }
    if (canonical(t.checkpoint.channel_values) !== canonical(w.values)) {
      differ(result, `${w.thread} ${w.id} values`, w.values, t.checkpoint.channel_values);
    }
    if (!t.pendingWrites.some(([, ch, v]) => ch === 'messages' && v === w.write)) {
      differ(result, `${w.thread} ${w.id} pending write`, w.write, t.pendingWrites);
    }
  }
  if (result.mismatches.length > 0) throw new Error(`${result.mismatches.length} written checkpoints are not intact`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const m = loadModules();
  const pool = new m.pg.Pool(connectionConfig(m, opts, { max: 2, application_name: `retention-judge-${opts.action}` }));
  const saver = new m.saver.PostgresSaver(pool, undefined, { schema: opts.schema });
  const result = { action: opts.action, ok: false };
  let code = EXIT_OK;
  try {
    if (opts.action === 'seed') await actionSeed(m, saver, opts, result);
    else if (opts.action === 'capture') await actionCapture(m, saver, opts, result);
    else if (opts.action === 'verify-latest') await actionVerify(m, saver, opts, result, false);
    else if (opts.action === 'verify-same') await actionVerify(m, saver, opts, result, true);
    else if (opts.action === 'verify-gone') await actionVerifyGone(m, saver, opts, result);
    else if (opts.action === 'writer') await actionWriter(m, saver, opts, result);
    else await actionVerifyWritten(m, saver, opts, result);
    result.ok = true;
  } catch (e) {
    result.error = e.message;
    code = EXIT_FAILED;
  } finally {
    await pool.end();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = code;
}

main();
