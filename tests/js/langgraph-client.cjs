#!/usr/bin/env node
// langgraph-client.cjs: drives the real LangGraph JS checkpointer
// (@langchain/langgraph-checkpoint-postgres, PostgresSaver) against a
// database, and prints one JSON object with what it saw. It exits 0 when every
// step worked, 1 when a step failed (the JSON says which and why), 64 on a
// usage error. tests/t2001-langgraph-js.sh and bench/js-setup-race.sh run it.
//
//   node langgraph-client.cjs --action setup|exercise|read|raw-client
//        [--uri URI] [--schema NAME] [--client pool|single]
//        [--password-file FILE] [--label TEXT] [--ready-file FILE]
//
// --uri       the database, without a password (default: $CHECKPOINT_DB_URI).
//             A URI that holds a password is refused: it would be on a
//             command line or in the environment.
// The password comes from the libpq-style pgpass file named by $PGPASSFILE
// (node-postgres reads it itself), or from --password-file FILE (first line).
//
// Actions:
//   setup      reads checkpoint_migrations, runs PostgresSaver.setup(), reads
//              it again: {"rows_before":[...],"rows_after":[...],"added":[...]}.
//              --ready-file FILE: once the modules are loaded and a
//              connection is open, write FILE and wait for SIGUSR2 before
//              calling setup(), so that several processes race for real
//              (bench/js-setup-race.sh).
//   exercise   put (two checkpoints, parent and child, with blobs), putWrites
//              (ordinary and special channels), getTuple (latest and by id)
//              and list (all, filter, limit, before), each checked against
//              what was written. It does not run setup(): it proves that the
//              schema someone else made is enough.
//                --client pool    a pg.Pool (max 4); the puts of several threads
//                                 run concurrently on it.
//                --client single  one database connection for the whole run.
//                                 PostgresSaver takes a pg.Pool-shaped object and
//                                 calls pool.connect() (expecting a client with
//                                 release()) and pool.query(); a bare pg.Client
//                                 has no release() and refuses a second
//                                 connect(), so the library cannot take one
//                                 (see --action raw-client). The one-connection
//                                 case an application can really run is a
//                                 pg.Pool with max: 1; this run counts the
//                                 physical connections the pool opened and the
//                                 backend pids it saw, and fails unless both
//                                 are exactly one.
//   read       reads back the threads an earlier `exercise --label L` wrote
//              (t2001-L and, for the pool client, t2001-L-1..3): for each, found
//              or not, and when found, getTuple and list must give exactly what
//              exercise wrote. {"threads":[{"thread_id":...,"found":true},...],
//              "found":N}. Used after a restore (tests/t5510).
//   raw-client hands PostgresSaver a connected pg.Client and reports what
//              setup() and getTuple() do with it (a documented probe of the
//              library's API; it exits 0 whatever the outcome).
'use strict';

const fs = require('fs');
const assert = require('assert');

const EXIT_OK = 0;
const EXIT_FAILED = 1;
const EXIT_USAGE = 64;

function usage(message) {
  process.stderr.write(`langgraph-client: ${message}\n` +
    'usage: langgraph-client.cjs --action setup|exercise|raw-client [--uri URI] ' +
    '[--schema NAME] [--client pool|single] [--password-file FILE] [--label TEXT] [--ready-file FILE]\n');
  process.exit(EXIT_USAGE);
}

function parseArgs(argv) {
  const opts = { schema: 'public', client: 'pool', label: '' };
  const known = new Set(['--action', '--uri', '--schema', '--client', '--password-file', '--label', '--ready-file']);
  for (let i = 0; i < argv.length; i += 1) {
    const name = argv[i];
    if (!known.has(name)) usage(`unknown argument "${name}"`);
    if (i + 1 >= argv.length) usage(`${name} needs a value`);
    opts[name.slice(2).replace('-', '_')] = argv[i + 1];
    i += 1;
  }
  opts.uri = opts.uri || process.env.CHECKPOINT_DB_URI;
  if (!opts.uri) usage('no database: give --uri or set CHECKPOINT_DB_URI');
  if (!['setup', 'exercise', 'raw-client', 'read'].includes(opts.action)) {
    usage(`--action must be setup, exercise, read or raw-client, not "${opts.action || ''}"`);
  }
  if (!['pool', 'single'].includes(opts.client)) usage(`--client must be pool or single, not "${opts.client}"`);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(opts.schema)) usage(`--schema "${opts.schema}" is not a plain identifier`);
  let parsed;
  try {
    parsed = new URL(opts.uri);
  } catch (e) {
    usage(`--uri is not a URI (${e.message})`);
  }
  if (parsed.password) {
    usage('the URI holds a password; put it in a pgpass file ($PGPASSFILE) or --password-file instead');
  }
  return opts;
}

// loadModules: the packages come from the test's npm cache (NODE_PATH).
function loadModules() {
  try {
    return {
      pg: require('pg'),
      saver: require('@langchain/langgraph-checkpoint-postgres'),
      base: require('@langchain/langgraph-checkpoint'),
      parseUri: require('pg-connection-string').parse,
      pgpass: require('pgpass'),
    };
  } catch (e) {
    process.stderr.write(`langgraph-client: cannot load the npm packages (${e.message}); ` +
      'install tests/js/package-lock.json (npm ci) and point NODE_PATH at its node_modules\n');
    process.exit(EXIT_FAILED);
  }
  return null;
}

// connectionConfig: node-postgres settings from the URI, with the password
// supplied by a function (pg's recommended way): the first line of
// --password-file, or else the entry of the pgpass file $PGPASSFILE names.
// The URI is parsed here rather than passed as connectionString, because pg
// lets the parsed string override an explicit password.
function connectionConfig(m, opts, extra) {
  const config = Object.assign(m.parseUri(opts.uri), extra);
  let password;
  if (opts.password_file) {
    password = async () => fs.readFileSync(opts.password_file, 'utf8').split('\n')[0];
  } else {
    password = () => new Promise((resolve, reject) => {
      m.pgpass({ host: config.host, port: config.port, database: config.database, user: config.user },
        (found) => {
          if (found) resolve(found);
          else {
            reject(new Error(`no password for ${config.user}@${config.host}:${config.port}/${config.database}: ` +
              `none in the pgpass file ${process.env.PGPASSFILE || '~/.pgpass'} and no --password-file`));
          }
        });
    });
  }
  config.password = password;
  return config;
}

function qualified(schema, table) {
  return `"${schema}".${table}`;
}

// migrationRows: the v values, or null when the table does not exist.
async function migrationRows(queryable, schema) {
  try {
    const r = await queryable.query(`SELECT v FROM ${qualified(schema, 'checkpoint_migrations')} ORDER BY v`);
    return r.rows.map((row) => row.v);
  } catch (e) {
    if (e.code === '42P01' || e.code === '3F000') return null;
    throw e;
  }
}

async function actionSetup(m, opts, result) {
  const pool = new m.pg.Pool(connectionConfig(m, opts, { max: 2, application_name: 'langgraph-client-setup' }));
  try {
    result.rows_before = await migrationRows(pool, opts.schema);
    (await pool.connect()).release();
    const saver = new m.saver.PostgresSaver(pool, undefined, { schema: opts.schema });
    if (opts.ready_file) {
      // A barrier for races: modules loaded and a connection open, the
      // process says so in READY_FILE and calls setup() on SIGUSR2, so
      // that node's start-up time does not spread the racers out.
      const go = new Promise((resolve) => { process.once('SIGUSR2', resolve); });
      fs.writeFileSync(opts.ready_file, `${process.pid}\n`);
      await go;
    }
    result.setup_started_at = Date.now();
    const started = process.hrtime.bigint();
    try {
      await saver.setup();
      result.setup_ok = true;
    } catch (e) {
      result.setup_ok = false;
      result.setup_error = { message: e.message, code: e.code || null };
    }
    result.setup_ms = Number(process.hrtime.bigint() - started) / 1e6;
    result.setup_finished_at = Date.now();
    result.rows_after = await migrationRows(pool, opts.schema);
    const before = new Set(result.rows_before || []);
    result.added = (result.rows_after || []).filter((v) => !before.has(v));
    if (!result.setup_ok) throw new Error(`setup() failed: ${result.setup_error.message}`);
  } finally {
    await pool.end();
  }
}

function checkpointAt(m, step, values, versions, parentId) {
  const cp = m.base.emptyCheckpoint();
  cp.id = m.base.uuid6(step);
  cp.channel_values = values;
  cp.channel_versions = versions;
  cp.versions_seen = parentId ? { node_a: { messages: versions.messages } } : {};
  return cp;
}

async function collect(iterable) {
  const out = [];
  for await (const item of iterable) out.push(item);
  return out;
}

// exerciseThread: the whole put/putWrites/getTuple/list cycle on one thread,
// asserting each answer; returns what it checked.
async function exerciseThread(m, saver, threadId) {
  const checks = [];
  const base = { configurable: { thread_id: threadId, checkpoint_ns: '' } };

  const cp1 = checkpointAt(m, -1, { messages: ['hello'], counter: 1 }, { messages: 1, counter: 1 }, null);
  const meta1 = { source: 'input', step: -1, parents: {} };
  const cfg1 = await saver.put(base, cp1, meta1, { messages: 1, counter: 1 });
  assert.strictEqual(cfg1.configurable.checkpoint_id, cp1.id, 'put returned the checkpoint id');
  checks.push('put:first');

  // The child changes messages only; counter keeps version 1, so its value
  // must come back from the blob the first put stored.
  const cp2 = checkpointAt(m, 0, { messages: ['hello', 'world'], counter: 1 }, { messages: 2, counter: 1 }, cp1.id);
  const meta2 = { source: 'loop', step: 0, parents: {} };
  const cfg2 = await saver.put(cfg1, cp2, meta2, { messages: 2 });
  assert.strictEqual(cfg2.configurable.checkpoint_id, cp2.id);
  checks.push('put:child');

  // Ordinary channels go through INSERT ... DO NOTHING, the special ones
  // (__error__) through the upsert; neither names task_path, so this also
  // proves v9's default.
  await saver.putWrites(cfg2, [['messages', 'pending-1'], ['counter', 2]], 'task-1');
  await saver.putWrites(cfg2, [['__error__', { message: 'boom' }]], 'task-2');
  await saver.putWrites(cfg2, [['__error__', { message: 'boom again' }]], 'task-2');
  checks.push('putWrites');

  const latest = await saver.getTuple(base);
  assert.ok(latest, 'getTuple found the thread');
  assert.strictEqual(latest.checkpoint.id, cp2.id, 'getTuple returns the latest checkpoint');
  assert.deepStrictEqual(latest.checkpoint.channel_values, { messages: ['hello', 'world'], counter: 1 });
  assert.strictEqual(latest.parentConfig.configurable.checkpoint_id, cp1.id, 'parent id');
  assert.strictEqual(latest.metadata.source, 'loop');
  assert.deepStrictEqual(latest.pendingWrites, [
    ['task-1', 'messages', 'pending-1'],
    ['task-1', 'counter', 2],
    ['task-2', '__error__', { message: 'boom again' }],
  ]);
  checks.push('getTuple:latest');

  const first = await saver.getTuple({ configurable: { thread_id: threadId, checkpoint_ns: '', checkpoint_id: cp1.id } });
  assert.ok(first, 'getTuple by id found the first checkpoint');
  assert.deepStrictEqual(first.checkpoint.channel_values, { messages: ['hello'], counter: 1 });
  assert.strictEqual(first.parentConfig, undefined);
  assert.deepStrictEqual(first.pendingWrites, []);
  checks.push('getTuple:by-id');

  const missing = await saver.getTuple({ configurable: { thread_id: `${threadId}-none`, checkpoint_ns: '' } });
  assert.strictEqual(missing, undefined, 'getTuple of an unknown thread');
  checks.push('getTuple:missing');

  const all = await collect(saver.list(base));
  assert.deepStrictEqual(all.map((t) => t.checkpoint.id), [cp2.id, cp1.id], 'list is newest first');
  assert.deepStrictEqual(all[1].checkpoint.channel_values, { messages: ['hello'], counter: 1 });
  const filtered = await collect(saver.list(base, { filter: { source: 'input' } }));
  assert.deepStrictEqual(filtered.map((t) => t.checkpoint.id), [cp1.id], 'list with a metadata filter');
  const limited = await collect(saver.list(base, { limit: 1 }));
  assert.deepStrictEqual(limited.map((t) => t.checkpoint.id), [cp2.id], 'list with a limit');
  const before = await collect(saver.list(base, { before: cfg2 }));
  assert.deepStrictEqual(before.map((t) => t.checkpoint.id), [cp1.id], 'list before a checkpoint');
  checks.push('list');

  return { thread_id: threadId, checkpoint_ids: [cp1.id, cp2.id], checks };
}

async function actionExercise(m, opts, result) {
  const appName = `langgraph-client-${opts.client}-${process.pid}`;
  const max = opts.client === 'single' ? 1 : 4;
  const pool = new m.pg.Pool(connectionConfig(m, opts, { max, application_name: appName }));
  let opened = 0;
  pool.on('connect', () => { opened += 1; });
  const pids = new Set();
  const notePid = async () => {
    const r = await pool.query('SELECT pg_backend_pid() AS pid');
    pids.add(r.rows[0].pid);
  };
  const label = opts.label || `${opts.client}-${process.pid}`;
  try {
    const saver = new m.saver.PostgresSaver(pool, undefined, { schema: opts.schema });
    await notePid();
    const main = await exerciseThread(m, saver, `t2001-${label}`);
    result.threads = [main];
    if (opts.client === 'pool') {
      // Three more threads at once: the pool hands out several connections.
      const more = await Promise.all([1, 2, 3].map((n) => exerciseThread(m, saver, `t2001-${label}-${n}`)));
      result.threads.push(...more);
    }
    await notePid();
    const seen = await pool.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [appName]);
    result.connections_now = seen.rows[0].n;
    result.pool_max = max;
    result.connections_opened = opened;
    result.backend_pids = [...pids];
    if (opts.client === 'single') {
      assert.strictEqual(opened, 1, 'the single-connection run opened exactly one connection');
      assert.strictEqual(pids.size, 1, 'every query ran on one backend');
      assert.strictEqual(result.connections_now, 1, 'one connection in pg_stat_activity');
    } else {
      assert.ok(opened >= 2, `the pool ran threads on several connections (opened ${opened})`);
    }
    const counts = await pool.query(
      `SELECT (SELECT count(*) FROM ${qualified(opts.schema, 'checkpoints')} WHERE thread_id = $1)::int AS checkpoints,
              (SELECT count(*) FROM ${qualified(opts.schema, 'checkpoint_blobs')} WHERE thread_id = $1)::int AS blobs,
              (SELECT count(*) FROM ${qualified(opts.schema, 'checkpoint_writes')} WHERE thread_id = $1)::int AS writes,
              (SELECT count(*) FROM ${qualified(opts.schema, 'checkpoint_writes')} WHERE thread_id = $1 AND task_path = '')::int AS writes_default_task_path`,
      [main.thread_id]);
    result.rows = counts.rows[0];
  } finally {
    await pool.end();
  }
}

// readThread: null when the thread does not exist; else asserts that it
// holds what exerciseThread wrote.
async function readThread(saver, threadId) {
  const base = { configurable: { thread_id: threadId, checkpoint_ns: '' } };
  const latest = await saver.getTuple(base);
  if (!latest) return { thread_id: threadId, found: false };
  assert.deepStrictEqual(latest.checkpoint.channel_values, { messages: ['hello', 'world'], counter: 1 },
    `${threadId}: the latest checkpoint's values`);
  assert.deepStrictEqual(latest.pendingWrites, [
    ['task-1', 'messages', 'pending-1'],
    ['task-1', 'counter', 2],
    ['task-2', '__error__', { message: 'boom again' }],
  ], `${threadId}: the pending writes`);
  const all = await collect(saver.list(base));
  assert.strictEqual(all.length, 2, `${threadId}: two checkpoints`);
  assert.deepStrictEqual(all[1].checkpoint.channel_values, { messages: ['hello'], counter: 1 });
  return { thread_id: threadId, found: true, checkpoint_ids: all.map((t) => t.checkpoint.id).reverse() };
}

async function actionRead(m, opts, result) {
  const pool = new m.pg.Pool(connectionConfig(m, opts, { max: 2, application_name: 'langgraph-client-read' }));
  const label = opts.label || `${opts.client}-${process.pid}`;
  try {
    const saver = new m.saver.PostgresSaver(pool, undefined, { schema: opts.schema });
    const ids = [`t2001-${label}`];
    if (opts.client === 'pool') ids.push(...[1, 2, 3].map((n) => `t2001-${label}-${n}`));
    result.threads = [];
    for (const id of ids) result.threads.push(await readThread(saver, id));
    result.found = result.threads.filter((t) => t.found).length;
  } finally {
    await pool.end();
  }
}

async function actionRawClient(m, opts, result) {
  const client = new m.pg.Client(connectionConfig(m, opts, { application_name: 'langgraph-client-raw' }));
  await client.connect();
  try {
    const saver = new m.saver.PostgresSaver(client, undefined, { schema: opts.schema });
    try {
      await saver.setup();
      result.setup = { ok: true };
    } catch (e) {
      result.setup = { ok: false, error: e.message };
    }
    try {
      await saver.getTuple({ configurable: { thread_id: 'raw-client-probe', checkpoint_ns: '' } });
      result.getTuple = { ok: true };
    } catch (e) {
      result.getTuple = { ok: false, error: e.message };
    }
    result.client_accepted = result.setup.ok && result.getTuple.ok;
  } finally {
    await client.end().catch(() => {});
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const m = loadModules();
  const result = {
    action: opts.action,
    schema: opts.schema,
    node: process.version,
    saver_version: require('@langchain/langgraph-checkpoint-postgres/package.json').version,
    ok: false,
  };
  if (opts.action === 'exercise') result.client = opts.client;
  let code = EXIT_OK;
  try {
    if (opts.action === 'setup') await actionSetup(m, opts, result);
    else if (opts.action === 'exercise') await actionExercise(m, opts, result);
    else if (opts.action === 'read') await actionRead(m, opts, result);
    else await actionRawClient(m, opts, result);
    result.ok = true;
  } catch (e) {
    result.error = { message: e.message, code: e.code || null };
    code = EXIT_FAILED;
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exitCode = code;
}

// Run as a program; required (by retention-judge.cjs), it lends its connection helpers.
if (require.main === module) main();
module.exports = { loadModules, connectionConfig, qualified };
