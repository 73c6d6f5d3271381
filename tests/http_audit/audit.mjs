// Runs graphql-http's GraphQL-over-HTTP server audit against a URL and prints the results as
// one JSON array of {id, name, status, reason} on stdout. Exits 0 whatever the verdicts are:
// judging them is the Python test's job (tests/test_http_protocol.py).
//
//   node tests/http_audit/audit.mjs http://127.0.0.1:8000/graphql

import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql-url>');
  process.exit(2);
}

const results = [];
// One at a time, so a failure's reason is never about another audit's request.
for (const audit of serverAudits({ url })) {
  try {
    const result = await audit.fn();
    results.push({
      id: result.id,
      name: result.name,
      status: result.status,
      reason: result.status === 'ok' ? null : result.reason,
    });
  } catch (err) {
    // An audit throws only when it cannot run at all (e.g. the server is unreachable).
    results.push({
      id: audit.id,
      name: audit.name,
      status: 'error',
      reason: `audit threw: ${err instanceof Error ? err.message : String(err)}`,
    });
  }
}
process.stdout.write(JSON.stringify(results, null, 2) + '\n');
