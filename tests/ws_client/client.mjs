// Runs operations against a Leadgraph URL with the graphql-ws client (graphql-transport-ws) and
// prints what it got as JSON on stdout. Judging it is the Python test's job
// (tests/test_websocket.py).
//
//   node tests/ws_client/client.mjs ws://127.0.0.1:8000/graphql '{"connectionParams": {...},
//     "operations": [{"query": "{ __typename }"}]}'
//   -> {"results": [{"next": [...], "error": null}], "closed": {"code": 1000, "reason": ""}}
//
//   node tests/ws_client/client.mjs ws://127.0.0.1:8000/graphql '{"handshake": "graphql-ws"}'
//   -> {"status": 400, "body": "..."} (or {"opened": "<subprotocol>"}): a bare handshake
//      offering the given subprotocol, to see how the server answers it.

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, specText] = process.argv.slice(2);
if (!url || !specText) {
  console.error('usage: node client.mjs <ws-url> <json spec>');
  process.exit(2);
}
const spec = JSON.parse(specText);

function handshake(subprotocol) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, subprotocol);
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    ws.on('open', () => {
      resolve({ opened: ws.protocol });
      ws.close();
    });
    ws.on('error', () => {}); // the unexpected response above has the details
  });
}

// A close event, an array of GraphQL errors (an `error` message), or anything else thrown.
function describe(error) {
  if (Array.isArray(error)) return { graphqlErrors: error };
  if (error && typeof error.code === 'number') return { close: { code: error.code, reason: error.reason } };
  return { thrown: String(error) };
}

async function run() {
  let closed = null;
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: spec.connectionParams,
    retryAttempts: 0,
    on: { closed: (event) => (closed = { code: event.code, reason: event.reason }) },
  });
  const results = [];
  // One at a time, so that each result is about its own operation.
  for (const operation of spec.operations) {
    results.push(
      await new Promise((resolve) => {
        const out = { next: [], error: null };
        client.subscribe(operation, {
          next: (value) => out.next.push(value),
          error: (error) => resolve({ ...out, error: describe(error) }),
          complete: () => resolve(out),
        });
      }),
    );
  }
  await client.dispose();
  return { results, closed };
}

const output = spec.handshake ? await handshake(spec.handshake) : await run();
process.stdout.write(JSON.stringify(output) + '\n');
