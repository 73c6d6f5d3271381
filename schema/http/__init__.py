"""HTTP endpoints beside /graphql (Starlette handlers), one module per concern; their logic is
in resolvers/, their SQL in db/repositories/, as for GraphQL fields."""
