// Subscribes to Leadgraph's change events with Apollo Client (its GraphQLWsLink, over the
// graphql-ws client) and prints what it got as JSON on stdout; judging it is the Python test's
// job (tests/test_subscription_clients.py).
//
//   node tests/apollo_client/subscribe.mjs ws://127.0.0.1:8000/graphql \
//     '{"token": "lgk_...", "after": "<cursor>", "count": 20, "resumeEvery": 6}'
//   -> {"edges": [{"cursor": ..., "node": {...}}, ...], "connections": 4, "error": null}
//
// As tests/ws_client/subscribe.mjs: `count` events in all, `resumeEvery` per connection, each
// new connection subscribing `after` the last cursor it got.

import { ApolloClient, InMemoryCache, gql } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [url, specText] = process.argv.slice(2);
if (!url || !specText) {
  console.error('usage: node subscribe.mjs <ws-url> <json spec>');
  process.exit(2);
}
const spec = JSON.parse(specText);
const EVENTS = gql`
  subscription Events($after: String) {
    events(after: $after) { cursor node { id type recordId } }
  }
`;

function plain(edge) {
  // Apollo adds __typename to each selection; the test compares with the events query.
  const { __typename: _edge, ...rest } = edge;
  const { __typename: _node, ...node } = rest.node;
  return { ...rest, node };
}

async function take(after, n) {
  const wsClient = createClient({
    url,
    webSocketImpl: WebSocket,
    connectionParams: { Authorization: `Bearer ${spec.token}` },
    retryAttempts: 0,
  });
  const client = new ApolloClient({ link: new GraphQLWsLink(wsClient), cache: new InMemoryCache() });
  const edges = [];
  const error = await new Promise((resolve) => {
    const subscription = client.subscribe({ query: EVENTS, variables: { after } }).subscribe({
      next: ({ data, error: failed }) => {
        if (failed) return resolve({ apolloError: String(failed.message ?? failed) });
        edges.push(plain(data.events));
        if (edges.length === n) {
          subscription.unsubscribe();
          resolve(null);
        }
      },
      error: (failed) => resolve({ apolloError: String(failed?.message ?? failed) }),
      complete: () => resolve(edges.length === n ? null : { completed: true }),
    });
  });
  client.stop();
  await wsClient.dispose();
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
