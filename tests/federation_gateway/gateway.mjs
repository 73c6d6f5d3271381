// An Apollo Gateway with one subgraph, Leadgraph at SUBGRAPH_URL, listening on 127.0.0.1:PORT.
// It forwards each request's Authorization header (as README.md shows) and asks the subgraph for
// ftv1 traces, as a gateway that reports traces does; each response's extensions then hold what
// the gateway decoded from the subgraph's trace, with Apollo's own protobuf code.
// Prints "ready <url>" once it serves.
import { ApolloGateway, IntrospectAndCompose, RemoteGraphQLDataSource } from "@apollo/gateway";
import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { Trace } from "@apollo/usage-reporting-protobuf";

const gateway = new ApolloGateway({
  supergraphSdl: new IntrospectAndCompose({
    subgraphs: [{ name: "leadgraph", url: process.env.SUBGRAPH_URL }],
  }),
  buildService: ({ url }) =>
    new RemoteGraphQLDataSource({
      url,
      willSendRequest({ request, context }) {
        const authorization = context.req?.headers.authorization;
        if (authorization) request.http.headers.set("authorization", authorization);
      },
    }),
});

// Apollo's usage reporting turns trace capture on (with an Apollo key); this does the same
// without sending anything anywhere.
const captureTraces = {
  async requestDidStart() {
    return {
      async didResolveOperation(requestContext) {
        requestContext.metrics.captureTraces = true;
      },
      async willSendResponse(requestContext) {
        const plan = requestContext.metrics.queryPlanTrace;
        const body = requestContext.response.body;
        if (!plan || body.kind !== "single") return;
        const fetch = plan.fetch;
        body.singleResult.extensions = {
          ...body.singleResult.extensions,
          subgraphTrace: {
            serviceName: fetch.serviceName,
            traceParsingFailed: Boolean(fetch.traceParsingFailed),
            trace: fetch.trace ? Trace.toObject(fetch.trace, { longs: String }) : null,
          },
        };
      },
    };
  },
};

const server = new ApolloServer({
  gateway,
  plugins: [captureTraces],
  includeStacktraceInErrorResponses: false,
});
const { url } = await startStandaloneServer(server, {
  listen: { host: "127.0.0.1", port: Number(process.env.PORT) },
  context: async ({ req }) => ({ req }),
});
console.log(`ready ${url}`);
