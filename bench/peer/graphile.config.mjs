// PostGraphile 5 over the bench's PostgreSQL tables: the peer that `make bench` measures
// Leadgraph against (bench/peer.py holds the documents, bench/README.md "The peer: PostGraphile").
//
// Production settings: no watch mode, no GraphiQL, no explain, no introspection of anything
// but `public`, one statement per read (no pgSettings, so no transaction around it). The
// database is the app's, untouched: everything PostGraphile needs beyond its defaults is here.
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { PostGraphileConnectionFilterPreset } from "postgraphile-plugin-connection-filter";
import { extendSchema, gql, jsonPgSmartTags, wrapPlans } from "postgraphile/utils";
import { access, lambda } from "postgraphile/grafast";

// postgresql+asyncpg://… (SQLAlchemy's form, as the bench passes it) -> postgresql://…
export function connectionString(url = process.env.DATABASE_URL) {
  if (!url) throw new Error("DATABASE_URL is not set (the bench's PostgreSQL database)");
  return url.replace(/^postgres(?:ql)?\+[a-z0-9_]+:\/\//, "postgresql://");
}

// Filters and sorts the documents use. PostGraphile 5 offers filterBy/orderBy only on columns
// that lead an index (workspace_id leads all of ours), so these are switched on by smart tags,
// set here rather than in the database (`@behavior +filterBy` as the issue says).
const FILTERED = "+filterBy +attribute:filterBy";
const SORTED = "+orderBy +attribute:orderBy";
// Derived columns and times: the plan below computes them, as the app's repositories do.
const DERIVED = "-insert -update";

const leadAttributes = {
  workspace_id: FILTERED,
  status: FILTERED,
  state_key: `${FILTERED} ${DERIVED}`,
  search_key: `${FILTERED} ${DERIVED}`,
  created_at: `${SORTED} ${DERIVED}`,
  updated_at: DERIVED,
  score: SORTED,
  converted_at: SORTED,
  email_key: DERIVED,
  name_key: DERIVED,
  city_key: DERIVED,
  source_key: DERIVED,
};
const clientAttributes = {
  workspace_id: FILTERED,
  status: FILTERED,
  created_at: SORTED,
};

function tagged(attributes) {
  return Object.fromEntries(
    Object.entries(attributes).map(([name, behavior]) => [name, { tags: { behavior } }]),
  );
}

// Only leads and clients are exposed; every other table of the app is left out entirely.
const HIDDEN = [
  "alembic_version",
  "api_keys",
  "email_codes",
  "memberships",
  "rate_limits",
  "sessions",
  "users",
  "workspaces",
];

const SmartTags = jsonPgSmartTags({
  version: 1,
  config: {
    class: {
      leads: { tags: { behavior: "-update -delete" }, attribute: tagged(leadAttributes) },
      clients: {
        tags: { behavior: "-insert -update -delete" },
        attribute: tagged(clientAttributes),
      },
      ...Object.fromEntries(HIDDEN.map((name) => [name, { tags: { behavior: "-*" } }])),
    },
  },
});

// The app's derived values (db/models/fields.py): case-folded keys and the search text.
// toLowerCase() is Python's casefold() for the bench's ASCII data.
const fold = (value) => (value ? value.toLowerCase() : "");
const fullName = (first, last) => [first, last].filter(Boolean).join(" ") || null;

// `name` on Lead and Client, as Leadgraph's schema has it: first and last name joined.
const NameField = extendSchema(() => ({
  typeDefs: gql`
    extend type Lead {
      name: String
    }
    extend type Client {
      name: String
    }
  `,
  objects: {
    Lead: {
      plans: {
        name($row) {
          return lambda([$row.get("first_name"), $row.get("last_name")], ([f, l]) => fullName(f, l));
        },
      },
    },
    Client: {
      plans: {
        name($row) {
          return lambda([$row.get("first_name"), $row.get("last_name")], ([f, l]) => fullName(f, l));
        },
      },
    },
  },
}));

// createLead writes what the app's LeadRepository.insert writes: the row as given, then its
// derived keys, and created_at = updated_at = now. (Without this, every request would have to
// send the derived values, or the database would need triggers the app does not have.)
const derive = (lead) => {
  const name = fullName(lead.firstName, lead.lastName);
  const now = new Date().toISOString();
  return {
    email_key: fold(lead.email),
    name_key: fold(name),
    city_key: fold(lead.city),
    state_key: fold(lead.state),
    source_key: fold(lead.source),
    search_key: [name, lead.email, lead.company].filter(Boolean).map(fold).join("\n"),
    created_at: now,
    updated_at: now,
  };
};

const COLUMNS = Object.keys(derive({}));

const DerivedOnCreate = wrapPlans({
  Mutation: {
    createLead(plan, $source, fieldArgs) {
      // Planned before the insert: a step made after a side effect would depend on it.
      const $derived = lambda(fieldArgs.getRaw(["input", "lead"]), derive);
      const columns = Object.fromEntries(COLUMNS.map((c) => [c, access($derived, c)]));
      const $result = plan();
      const $insert = $result.getStepForKey("result");
      for (const [column, $value] of Object.entries(columns)) $insert.set(column, $value);
      return $result;
    },
  },
});

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset, PostGraphileConnectionFilterPreset],
  plugins: [SmartTags, NameField, DerivedOnCreate],
  pgServices: [
    makePgService({
      connectionString: connectionString(),
      schemas: ["public"],
      // 16 concurrent requests, one statement each: a connection per request in flight.
      poolConfig: { max: Number(process.env.PEER_POOL_SIZE || 20) },
      pubsub: false,
    }),
  ],
  grafserv: {
    graphqlPath: "/graphql",
    graphiql: false,
    watch: false,
    websockets: false,
  },
  grafast: {
    explain: false,
  },
  schema: {
    // The filters the documents use, nothing on relations (fewer types, as a lean setup).
    connectionFilterRelations: false,
    connectionFilterComputedColumns: false,
    connectionFilterSetofFunctions: false,
    connectionFilterAllowNullInput: false,
    connectionFilterAllowEmptyObjectInput: false,
  },
};

export default preset;
