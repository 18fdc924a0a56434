#!/usr/bin/env node
// ha-writer.cjs: writes LangGraph checkpoints without pause through the real
// JS checkpointer (PostgresSaver) into a replicated cluster, and logs every
// acknowledged one, for the failover tests (tests/t6600-patroni-cluster.sh).
//
//   node ha-writer.cjs --uri URI --password-file FILE --log FILE [--label TEXT]
//
// --uri  a libpq multi-host URI without a password:
//        postgresql://user@h1:p1,h2:p2,h3:p3/db?target_session_attrs=read-write
// node-postgres has no multi-host URIs: this program does what libpq's
// target_session_attrs=read-write does. It tries the hosts in order, keeps
// the first whose session is not read-only (SHOW transaction_read_only), and
// builds a pg.Pool and a PostgresSaver on it; after an error it finds the
// leader again the same way and carries on.
//
// Each acknowledged put() appends "MS THREAD CHECKPOINT_ID" to --log (MS: Unix
// time in milliseconds), each failed one "MS ERROR message". One put a time,
// so the log's order is the acknowledgement order. On SIGTERM it stops and
// prints one JSON line: {"acked":N,"errors":N,"leaders":["host:port",...]}.
// Exit 0, or 64 on a usage error.
'use strict';

const fs = require('fs');
const pg = require('pg');
const { PostgresSaver } = require('@langchain/langgraph-checkpoint-postgres');
const base = require('@langchain/langgraph-checkpoint');

function usage(msg) {
  process.stderr.write(`ha-writer: ${msg}\nusage: ha-writer.cjs --uri URI --password-file FILE --log FILE [--label TEXT]\n`);
  process.exit(64);
}

function parseArgs(argv) {
  const opts = { label: 'ha' };
  for (let i = 2; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-/g, '_');
    if (!['uri', 'password_file', 'log', 'label'].includes(key) || argv[i + 1] === undefined) usage(`bad argument ${argv[i]}`);
    opts[key] = argv[i + 1];
  }
  if (!opts.uri || !opts.password_file || !opts.log) usage('--uri, --password-file and --log are needed');
  const m = /^postgres(?:ql)?:\/\/([^@/:]+)@([^/]+)\/([^?]+)(?:\?(.*))?$/.exec(opts.uri);
  if (!m) usage('the URI must be postgresql://user@host:port[,host:port...]/db[?...] (no password)');
  opts.user = m[1];
  opts.database = m[3];
  opts.hosts = m[2].split(',').map((hp) => {
    const h = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(hp);
    return { host: h[1], port: Number(h[2] || 5432) };
  });
  opts.password = fs.readFileSync(opts.password_file, 'utf8').split('\n')[0];
  return opts;
}

const opts = parseArgs(process.argv);
const settings = (h) => ({ host: h.host, port: h.port, user: opts.user, database: opts.database,
  password: opts.password, connectionTimeoutMillis: 2000, application_name: `ha-writer-${opts.label}` });

// findLeader: the first host whose session is read-write (target_session_attrs=read-write).
async function findLeader() {
  for (const h of opts.hosts) {
    const c = new pg.Client(settings(h));
    c.on('error', () => {});
    try {
      await c.connect();
      const r = await c.query('SHOW transaction_read_only');
      if (r.rows[0].transaction_read_only === 'off') return h;
    } catch (e) {
      // down or refusing: the next host
    } finally {
      c.end().catch(() => {});
    }
  }
  throw new Error('no host accepts writes');
}

let stopping = false;
process.on('SIGTERM', () => { stopping = true; });

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const log = fs.openSync(opts.log, 'a');
  const leaders = [];
  let acked = 0, errors = 0, step = 0, pool = null, saver = null;
  while (!stopping) {
    try {
      if (saver === null) {
        const h = await findLeader();
        leaders.push(`${h.host}:${h.port}`);
        pool = new pg.Pool({ ...settings(h), max: 1, idleTimeoutMillis: 5000 });
        pool.on('error', () => {});
        // A client PostgresSaver has checked out emits 'error' when its server
        // dies; node-postgres leaves that to the application, and unhandled it
        // ends the process. Handled, the query in flight fails and we reconnect.
        pool.on('connect', (client) => client.on('error', () => {}));
        saver = new PostgresSaver(pool);
      }
      step += 1;
      const thread = `${opts.label}-${step % 20}`;
      const cp = base.emptyCheckpoint();
      cp.id = base.uuid6(step);
      cp.channel_values = { messages: [`message ${step}`], counter: step };
      cp.channel_versions = { messages: step, counter: step };
      await saver.put({ configurable: { thread_id: thread, checkpoint_ns: '' } }, cp,
        { source: 'loop', step, parents: {} }, { messages: step, counter: step });
      fs.writeSync(log, `${Date.now()} ${thread} ${cp.id}\n`);
      acked += 1;
    } catch (e) {
      errors += 1;
      fs.writeSync(log, `${Date.now()} ERROR ${String(e.message).replace(/\s+/g, ' ')}\n`);
      if (pool) pool.end().catch(() => {});
      pool = null;
      saver = null;
      await sleep(100);
    }
  }
  if (pool) await pool.end().catch(() => {});
  fs.closeSync(log);
  process.stdout.write(JSON.stringify({ acked, errors, leaders }) + '\n');
}

main().catch((e) => { process.stderr.write(`ha-writer: ${e.stack}\n`); process.exit(1); });
