// Subscribes to Leadgraph's change events with the graphql-ws client (graphql-transport-ws) and
// prints what it got as JSON on stdout; judging it is the Python test's job
// (tests/test_subscription_clients.py).
//
//   node tests/ws_client/subscribe.mjs ws://127.0.0.1:8000/graphql \
//     '{"token": "lgk_...", "after": "<cursor>", "count": 20, "resumeEvery": 6}'
//   -> {"edges": [{"cursor": ..., "node": {...}}, ...], "connections": 4, "error": null}
//
// It takes `count` events in all, `resumeEvery` per connection: after each batch it disposes of
// the client and subscribes again with a new one, `after` the last cursor it got, as an app does
// that was offline. An error (a GraphQL error, or the server closing the socket: {"close":
// {"code", "reason"}}) ends the run.

import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, specText] = process.argv.slice(2);
if (!url || !specText) {
  console.error('usage: node subscribe.mjs <ws-url> <json spec>');
  process.exit(2);
}
const spec = JSON.parse(specText);
const query = `subscription ($after: String) {
  events(after: $after) { cursor node { id type recordId } }
}`;

function describe(error) {
  if (Array.isArray(error)) return { graphqlErrors: error };
  if (error && typeof error.code === 'number') return { close: { code: error.code, reason: error.reason } };
  return { thrown: String(error) };
}

// Up to `n` events after `after` on a new connection; then the client is disposed of.
async function take(after, n) {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${spec.token}` },
    retryAttempts: 0,
  });
  const edges = [];
  const error = await new Promise((resolve) => {
    const unsubscribe = client.subscribe(
      { query, variables: { after } },
      {
        next: (result) => {
          if (result.errors) return resolve({ graphqlErrors: result.errors });
          edges.push(result.data.events);
          if (edges.length === n) {
            unsubscribe();
            resolve(null);
          }
        },
        error: (err) => resolve(describe(err)),
        complete: () => resolve(edges.length === n ? null : { completed: true }),
      },
    );
  });
  await client.dispose();
  return { edges, error };
}

const edges = [];
let after = spec.after ?? null;
let connections = 0;
let error = null;
while (edges.length < spec.count && !error) {
  const batch = await take(after, Math.min(spec.resumeEvery ?? spec.count, spec.count - edges.length));
  connections += 1;
  edges.push(...batch.edges);
  error = batch.error;
  if (edges.length) after = edges[edges.length - 1].cursor;
}
process.stdout.write(JSON.stringify({ edges, connections, error }) + '\n');
