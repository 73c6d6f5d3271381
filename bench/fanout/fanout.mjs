// The load side of bench/fanout.py: `subscribers` WebSocket connections (graphql-transport-ws,
// with the `ws` package; the suite proves the graphql-ws and Apollo clients separately), each
// with one `events` subscription, and a writer that runs createLead at `rate` per second for
// `warmup` + `seconds`. For each event a subscriber gets: the time from the event's occurredAt
// (taken in the writing transaction, just before its commit) to its arrival here, on this
// machine's one clock. Prints one JSON object on stdout; judging it is bench/fanout.py's job.
//
//   node bench/fanout/fanout.mjs ws://127.0.0.1:8000/graphql http://127.0.0.1:8000/graphql \
//     '{"token": "lgk_...", "subscribers": 1000, "rate": 50, "seconds": 300, "warmup": 10}'

import WebSocket from 'ws';

const [wsUrl, httpUrl, specText] = process.argv.slice(2);
if (!wsUrl || !httpUrl || !specText) {
  console.error('usage: node fanout.mjs <ws-url> <http-url> <json spec>');
  process.exit(2);
}
const spec = {
  subscribers: 1000,
  rate: 50,
  seconds: 60,
  warmup: 5,
  window: 10, // seconds per row of `windows`
  drain: 5, // seconds to wait for the last events after the last write
  openBatch: 50, // connections opened at once
  query: `subscription {
  events {
    cursor
    node {
      id type occurredAt recordId
      changes { field from to }
      record { id ... on Lead { email status score } }
    }
  }
}`,
  ...JSON.parse(specText),
};

const now = () => performance.timeOrigin + performance.now();

// Latency histogram in 0.1 ms buckets up to 60 s (beyond: the last bucket).
const BUCKETS = 600_000;
class Histogram {
  constructor() {
    this.counts = new Uint32Array(BUCKETS);
    this.n = 0;
    this.max = 0;
  }
  add(ms) {
    const b = Math.min(BUCKETS - 1, Math.max(0, Math.round(ms * 10)));
    this.counts[b] += 1;
    this.n += 1;
    if (ms > this.max) this.max = ms;
  }
  quantile(q) {
    if (this.n === 0) return null;
    const rank = Math.ceil(q * this.n);
    let seen = 0;
    for (let b = 0; b < BUCKETS; b += 1) {
      seen += this.counts[b];
      if (seen >= rank) return b / 10;
    }
    return this.max;
  }
  summary() {
    return {
      n: this.n,
      p50: this.quantile(0.5),
      p90: this.quantile(0.9),
      p99: this.quantile(0.99),
      max: this.n ? Math.round(this.max * 10) / 10 : null,
    };
  }
}

const all = new Histogram();
const windows = []; // Histogram per `window` seconds of the measured phase
let measureFrom = Infinity; // occurredAt (ms) from which events count
let measureTo = Infinity;
const closes = {};
const errors = [];
let acked = 0;
let delivered = 0; // measured events received, all subscribers
let seen = 0; // every event received
const perSocket = [];

function record(message) {
  const occurred = Date.parse(message.payload.data.events.node.occurredAt);
  seen += 1;
  if (occurred < measureFrom || occurred >= measureTo) return;
  const ms = now() - occurred;
  all.add(ms);
  const w = Math.floor((occurred - measureFrom) / 1000 / spec.window);
  (windows[w] ??= new Histogram()).add(ms);
  delivered += 1;
}

function open(index) {
  return new Promise((resolve) => {
    const ws = new WebSocket(wsUrl, 'graphql-transport-ws', { perMessageDeflate: false });
    perSocket[index] = 0;
    ws.on('open', () => {
      ws.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${spec.token}` } }));
    });
    ws.on('message', (data) => {
      const message = JSON.parse(data);
      if (message.type === 'next') {
        if (message.payload.errors && errors.length < 5) errors.push(message.payload.errors);
        else record(message);
        perSocket[index] += 1;
      } else if (message.type === 'connection_ack') {
        acked += 1;
        ws.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: spec.query } }));
        resolve(ws);
      } else if (message.type === 'ping') {
        ws.send(JSON.stringify({ type: 'pong' }));
      } else if (message.type === 'error' && errors.length < 5) {
        errors.push(message.payload);
      }
    });
    ws.on('close', (code) => {
      closes[code] = (closes[code] ?? 0) + 1;
      resolve(ws);
    });
    ws.on('error', (error) => {
      if (errors.length < 5) errors.push(String(error));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const mutation = `mutation ($input: CreateLeadInput!) { createLead(input: $input) { lead { id } userErrors { message } } }`;
let writes = 0;
let measuredWrites = 0;
let writeErrors = 0;
const writeLatency = new Histogram();

async function write(i, measured) {
  const started = now();
  try {
    const response = await fetch(httpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${spec.token}` },
      body: JSON.stringify({
        query: mutation,
        variables: { input: { email: `fanout-${process.pid}-${i}@example.com`, firstName: 'Fan', lastName: `Out ${i}` } },
      }),
    });
    const body = await response.json();
    if (!response.ok || body.errors || body.data.createLead.userErrors.length) {
      writeErrors += 1;
      if (errors.length < 5) errors.push(body.errors ?? body.data?.createLead?.userErrors ?? response.status);
      return;
    }
    writes += 1;
    if (measured) measuredWrites += 1;
    writeLatency.add(now() - started);
  } catch (error) {
    writeErrors += 1;
    if (errors.length < 5) errors.push(String(error));
  }
}

// Runs `count` writes at `rate`, on a fixed schedule (a slow write does not delay the next).
async function writeFor(seconds, measured, offset) {
  const count = Math.round(seconds * spec.rate);
  const interval = 1000 / spec.rate;
  const start = now();
  const pending = [];
  for (let i = 0; i < count; i += 1) {
    const wait = start + i * interval - now();
    if (wait > 0) await sleep(wait);
    pending.push(write(offset + i, measured));
  }
  await Promise.all(pending);
  return count;
}

const sockets = [];
const openStarted = now();
for (let i = 0; i < spec.subscribers; i += spec.openBatch) {
  const batch = [];
  for (let j = i; j < Math.min(spec.subscribers, i + spec.openBatch); j += 1) batch.push(open(j));
  sockets.push(...(await Promise.all(batch)));
}
const openSeconds = (now() - openStarted) / 1000;
await sleep(1000); // the last subscribe messages reach their reader

let offset = await writeFor(spec.warmup, false, 0);
measureFrom = now();
offset += await writeFor(spec.seconds, true, offset);
measureTo = now();
await sleep(spec.drain * 1000);

const expected = measuredWrites * acked;
const counts = perSocket.slice().sort((a, b) => a - b);
console.log(
  JSON.stringify({
    subscribers: spec.subscribers,
    connected: acked,
    openSeconds,
    rate: spec.rate,
    seconds: spec.seconds,
    writes,
    measuredWrites,
    writeErrors,
    writeLatency: writeLatency.summary(),
    expected,
    delivered,
    missing: expected - delivered,
    seen,
    perSocketMin: counts[0] ?? 0,
    perSocketMax: counts[counts.length - 1] ?? 0,
    latency: all.summary(),
    windows: windows.map((h, i) => ({ from: i * spec.window, ...h.summary() })),
    closes,
    errors,
  }),
);
for (const ws of sockets) ws.terminate();
process.exit(0);
