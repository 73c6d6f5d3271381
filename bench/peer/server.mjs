// The peer's HTTP server: PostGraphile 5 (graphile.config.mjs) through grafserv on node:http.
//
//   DATABASE_URL=postgresql://postgres@127.0.0.1:5432/leadgraph_bench \
//     node_modules/.bin/node server.mjs --port 8002
//
// POST /graphql answers GraphQL; GET /healthz answers 200 once the schema is built (the bench
// waits for it, as it does for Leadgraph). The port: --port N, else $PORT, else 5678.
import { createServer } from "node:http";
import { parseArgs } from "node:util";

// Production mode unless told otherwise: Grafast reads this when it is loaded, hence the
// dynamic imports below.
process.env.GRAPHILE_ENV ??= "production";
process.env.NODE_ENV ??= "production";
const { postgraphile } = await import("postgraphile");
const { grafserv } = await import("postgraphile/grafserv/node");
const { default: preset } = await import("./graphile.config.mjs");

const { values } = parseArgs({
  options: { port: { type: "string" }, host: { type: "string" } },
});
const port = Number(values.port ?? process.env.PORT ?? 5678);
const host = values.host ?? process.env.HOST ?? "127.0.0.1";

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
// Build the schema before listening, so that /healthz means ready.
await pgl.getSchema();
const handler = serv.createHandler();

const server = createServer((req, res) => {
  handler(req, res, () => {
    const ok = req.url === "/healthz" && req.method === "GET";
    res.writeHead(ok ? 200 : 404, { "Content-Type": "text/plain" });
    res.end(ok ? "ok\n" : "not found\n");
  });
});
server.keepAliveTimeout = 65_000;

async function stop() {
  server.close();
  await pgl.release();
  process.exit(0);
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);

server.listen(port, host, () => {
  console.log(`PostGraphile peer on http://${host}:${port}/graphql`);
});
