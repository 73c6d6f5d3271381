"""No N+1: relations resolve through DataLoaders, so statements per request do not grow with
the page size."""

from __future__ import annotations

import re

from resolvers.ids import to_global_id
from resolvers.loaders import MAX_BATCH
from tests.conftest import GraphQLClient, LiveServer
from tests.databases import suite_engine
from tests.factories import client_values, create_clients, create_leads, lead_values

LEADS_WITH_CLIENTS = """
query ($first: Int!) {
  leads(first: $first) { edges { node { id convertedClient { name } } } }
}
"""
CLIENTS_WITH_LEADS = """
query ($first: Int!) {
  clients(first: $first) { nodes { id convertedFrom { email convertedClient { email } } } }
}
"""


def seed_converted(server: LiveServer, n: int) -> None:
    client_ids = create_clients(server, *(client_values() for _ in range(n)))
    pks = [int(__import__("base64").b64decode(c).decode().split(":")[1]) for c in client_ids]
    create_leads(
        server,
        *(
            lead_values(
                converted_client_id=pk, converted_at=lead_values()["created_at"], status="WON"
            )
            for pk in pks
        ),
    )


def test_a_100_lead_page_with_converted_clients_costs_three_statements(
    server: LiveServer, gql: GraphQLClient, count_queries
) -> None:
    seed_converted(server, 100)

    with count_queries() as small:
        page10 = gql.data(LEADS_WITH_CLIENTS, {"first": 10})
    with count_queries() as large:
        page100 = gql.data(LEADS_WITH_CLIENTS, {"first": 100})

    assert len(page10["leads"]["edges"]) == 10
    assert len(page100["leads"]["edges"]) == 100
    assert all(e["node"]["convertedClient"]["name"] for e in page100["leads"]["edges"])
    # The credential lookup, the page, and one batch of clients.
    # The credential lookup, the page, and one batch of clients.
    assert (small.count, large.count) == (3, 3)


def test_clients_with_converted_from_and_back_cost_four_statements(
    server: LiveServer, gql: GraphQLClient, count_queries
) -> None:
    seed_converted(server, 60)

    with count_queries() as small:
        gql.data(CLIENTS_WITH_LEADS, {"first": 5})
    with count_queries() as large:
        result = gql.data(CLIENTS_WITH_LEADS, {"first": 60})

    assert all(n["convertedFrom"]["convertedClient"] for n in result["clients"]["nodes"])
    # The credential lookup, the page, one batch of leads, one batch of clients.
    assert (small.count, large.count) == (4, 4)


ENTITIES_TWICE = """
query ($a: [_Any!]!, $b: [_Any!]!) {
  a: _entities(representations: $a) { __typename }
  b: _entities(representations: $b) { __typename }
}
"""


def test_a_batch_of_lookups_is_split_to_stay_within_the_bind_parameter_limit(
    gql: GraphQLClient, count_queries
) -> None:
    # Aliases gather several lists' worth of keys into one batch; PostgreSQL binds at most
    # 32,767 parameters per statement, so a batch goes out in parts of MAX_BATCH keys.
    per_alias = MAX_BATCH // 2 + 100

    def reps(start: int) -> list[dict[str, str]]:
        ids = range(start, start + per_alias)
        return [{"__typename": "Lead", "id": to_global_id("Lead", pk)} for pk in ids]

    with count_queries() as counter:
        data = gql.data(ENTITIES_TWICE, {"a": reps(1), "b": reps(1 + per_alias)})

    assert data == {"a": [None] * per_alias, "b": [None] * per_alias}
    lookups = [s for s in counter.statements if "FROM leads" in s and "lead_merges" not in s]
    assert len(lookups) == 2
    # No lead has these ids: each part looks them up once more among merged leads' ids.
    assert len([s for s in counter.statements if "lead_merges" in s]) == 2


def _selected_columns(statement: str, table: str) -> set[str]:
    """The columns of ``table`` a page's SELECT list names (``leads.email`` → ``email``)."""
    select_list = re.split(r"\sFROM\s", statement, maxsplit=1)[0]
    return set(re.findall(rf"\b{table}\.(\w+)", select_list))


def test_a_page_reads_only_the_columns_its_selection_needs(
    server: LiveServer, gql: GraphQLClient, count_queries
) -> None:
    """A first page of ten fields reads them (and what cursors and computed fields need),
    not all ~30 columns, JSON metadata included; selecting more reads more, through
    fragments too, and a resolver field reads the columns it declares."""
    create_leads(server, lead_values(meta={"tier": "gold"}, notes="call back"))
    narrow = "{ leads(first: 5) { edges { cursor node { id email name status createdAt } } } }"
    wide = """{ leads(first: 5) { nodes { ...More createdBy { __typename } } } }
                fragment More on Lead { metadata notes convertedClient { id } }"""
    resolved = "{ leads(first: 5) { nodes { id updatedBy { __typename } } } }"

    columns = {}
    for name, document in (("narrow", narrow), ("wide", wide), ("resolved", resolved)):
        with count_queries() as counted:
            gql.data(document)
        [page] = [s for s in counted.statements if "FROM leads" in s and "LIMIT" in s]
        columns[name] = _selected_columns(page, "leads")

    assert columns["narrow"] == {
        "id", "email", "first_name", "last_name", "status", "created_at",
    }  # fmt: skip
    assert {"metadata", "notes", "converted_client_id", "created_by_user_id"} <= columns["wide"]
    assert "email" not in columns["wide"] and "search_key" not in columns["wide"]
    assert gql.data(wide)["leads"]["nodes"] == [
        {
            "metadata": {"tier": "gold"},
            "notes": "call back",
            "convertedClient": None,
            "createdBy": None,
        }
    ]
    assert columns["resolved"] == {
        "id", "first_name", "last_name", "status", "created_at",
        "updated_by_user_id", "updated_by_api_key_id",
    }  # fmt: skip


CREATE = 'mutation { createLead(input: {email: "n@example.com"}) { lead { id } } }'
CONVERT = """
mutation ($id: ID!) {
  convertLead(id: $id, input: {firstName: "N", lastName: "M"}) { lead { id } }
}
"""
SAME_EMAIL = """
mutation ($id: ID!) { updateLead(id: $id, input: {email: "n@example.com"}) { lead { id } } }
"""


def test_a_write_costs_its_statements_and_the_event_logs(gql: GraphQLClient, count_queries) -> None:
    """Issue 10: a write appends its events last, whatever their number: on PostgreSQL in one
    statement (the events into ``event_appends``, numbered at commit by the database); on
    SQLite in two (the counter, then one INSERT of the events)."""
    with count_queries() as create:
        lead_id = gql.data(CREATE)["createLead"]["lead"]["id"]
    with count_queries() as convert:
        gql.data(CONVERT, {"id": lead_id})
    with count_queries() as unchanged:
        gql.data(SAME_EMAIL, {"id": lead_id})

    log = 1 if suite_engine() == "postgresql" else 2
    # The credential lookup and the INSERT (2 before issue 10); then the log.
    assert create.count == 2 + log
    appends = "INSERT INTO event_appends" if log == 1 else "INSERT INTO event_counters"
    assert appends in create.statements[2]
    if log == 2:
        assert "INSERT INTO events" in create.statements[-1]
    # The lookup; the lead read and locked, the client's INSERT, the lead's tags copied to the
    # client, the lead's UPDATE, the UPDATE that puts the lead's activities on the client's
    # timeline (the last two issue 12's; 4 before); then the log, as many statements for both
    # events (CLIENT_CREATED, LEAD_CONVERTED).
    assert convert.count == 6 + log
    assert "UPDATE activities" in convert.statements[5]
    assert convert.statements[6] == create.statements[2]
    assert ("INSERT INTO events" if log == 2 else appends) in convert.statements[-1]
    # The lookup and the lead read and locked: nothing changed, nothing written, no event.
    assert unchanged.count == 2
