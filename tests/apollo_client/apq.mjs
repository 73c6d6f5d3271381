// Runs one query twice with Apollo Client's PersistedQueryLink (automatic persisted queries)
// over HttpLink, recording each request the link sends, and prints the data and the requests
// as JSON on stdout; judging them is the Python test's job (tests/test_documents.py).
//
//   node tests/apollo_client/apq.mjs http://127.0.0.1:8000/graphql '{"token": "lgk_...", "query": "..."}'

import { createHash } from 'node:crypto';
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache, gql } from '@apollo/client';
import { PersistedQueryLink } from '@apollo/client/link/persisted-queries';

const [url, specText] = process.argv.slice(2);
const spec = JSON.parse(specText);
const sent = [];
const recording = (input, init) => {
  sent.push(JSON.parse(init.body));
  return fetch(input, init);
};
const link = ApolloLink.from([
  new PersistedQueryLink({ sha256: (text) => createHash('sha256').update(text).digest('hex') }),
  new HttpLink({ uri: url, fetch: recording, headers: { Authorization: `Bearer ${spec.token}` } }),
]);
const client = new ApolloClient({ link, cache: new InMemoryCache() });
const query = gql(spec.query);
const first = await client.query({ query, fetchPolicy: 'network-only' });
const second = await client.query({ query, fetchPolicy: 'network-only' });
console.log(JSON.stringify({ first: first.data, second: second.data, sent }));
