"""API keys and sessions as credentials: shown once, hashed, recorded when used, and dead at
once when revoked or expired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, update

from db.models import ApiKey, Session
from db.types import utcnow
from tests.conftest import GraphQLClient, LiveServer, Mailbox
from tests.test_auth_flows import verified_session

CREATE_KEY = """
mutation ($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    secret
    apiKey { id name prefix role expiresAt lastUsedAt revokedAt createdBy { email } }
    userErrors { field message code }
  }
}
"""
REVOKE_KEY = """
mutation ($id: ID!) {
  revokeApiKey(id: $id) { apiKey { id revokedAt } userErrors { field message code } }
}
"""
KEYS = "{ apiKeys { id name prefix role lastUsedAt revokedAt } }"
ME = "{ me { role apiKey { name } user { email } workspace { name } } }"


def create_key(gql: GraphQLClient, **values: object) -> dict:  # type: ignore[type-arg]
    payload: dict = gql.data(CREATE_KEY, {"input": {"name": "CRM sync", "role": "MEMBER"} | values})  # type: ignore[type-arg]
    return payload["createApiKey"]


def test_an_api_key_is_shown_once_and_works(gql: GraphQLClient, server: LiveServer) -> None:
    created = create_key(gql)
    secret, key = created["secret"], created["apiKey"]

    assert created["userErrors"] == []
    assert secret.startswith("lgk_") and len(secret) > 40
    assert key["prefix"] == secret[:12]
    assert (key["name"], key["role"], key["lastUsedAt"], key["revokedAt"]) == (
        "CRM sync",
        "MEMBER",
        None,
        None,
    )
    assert key["createdBy"] is None  # created with an API key, not by a member
    listed = [k for k in gql.data(KEYS)["apiKeys"] if k["id"] == key["id"]]
    assert listed == [
        {
            "id": key["id"],
            "name": "CRM sync",
            "prefix": secret[:12],
            "role": "MEMBER",
            "lastUsedAt": None,
            "revokedAt": None,
        }
    ]
    assert "secret" not in str(gql.data(KEYS))

    assert gql.as_(secret).data(ME)["me"] == {
        "role": "MEMBER",
        "apiKey": {"name": "CRM sync"},
        "user": None,
        "workspace": {"name": "Default"},
    }

    async def stored() -> list[str]:
        async with server.db.read() as conn:
            return [r.token_hash for r in (await conn.execute(select(ApiKey.__table__))).all()]  # type: ignore[attr-defined]

    assert all(secret not in h for h in server.run(stored()))


def test_an_api_key_records_when_it_was_last_used(gql: GraphQLClient) -> None:
    created = create_key(gql)
    before = datetime.now(UTC)
    gql.as_(created["secret"]).data("{ leads { totalCount } }")
    [used] = [k for k in gql.data(KEYS)["apiKeys"] if k["id"] == created["apiKey"]["id"]]
    assert used["lastUsedAt"] is not None
    assert datetime.fromisoformat(used["lastUsedAt"]) >= before - timedelta(seconds=1)


def test_a_revoked_api_key_stops_working_at_once(gql: GraphQLClient, http: httpx.Client) -> None:
    created = create_key(gql)
    key = gql.as_(created["secret"])
    assert key.data("{ leads { totalCount } }") == {"leads": {"totalCount": 0}}

    revoked = gql.data(REVOKE_KEY, {"id": created["apiKey"]["id"]})["revokeApiKey"]

    assert revoked["userErrors"] == []
    assert revoked["apiKey"]["revokedAt"] is not None
    body = key("{ leads { totalCount } }", status=401)
    assert body["errors"][0]["extensions"] == {"code": "UNAUTHENTICATED"}


def test_an_expired_api_key_stops_working(gql: GraphQLClient, server: LiveServer) -> None:
    created = create_key(gql, expiresAt=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    key = gql.as_(created["secret"])
    assert key.data("{ me { role } }") == {"me": {"role": "MEMBER"}}

    async def expire() -> None:
        async with server.db.write() as session:
            await session.execute(
                update(ApiKey)
                .where(ApiKey.name == "CRM sync")  # type: ignore[arg-type]
                .values(expires_at=utcnow() - timedelta(seconds=1))
            )

    server.run(expire())
    assert key("{ me { role } }", status=401)["errors"][0]["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )


def test_an_api_key_cannot_expire_in_the_past(gql: GraphQLClient) -> None:
    created = create_key(gql, expiresAt="2020-01-01T00:00:00Z")
    assert created["userErrors"] == [
        {
            "field": ["input", "expiresAt"],
            "code": "INVALID",
            "message": "expiresAt must be in the future.",
        }
    ]


@pytest.mark.parametrize(
    ("column", "age"),
    [("expires_at", timedelta(seconds=-1)), ("last_used_at", timedelta(days=-8))],
    ids=["absolute-limit", "idle-limit"],
)
def test_an_expired_session_stops_working(
    anon: GraphQLClient, mailbox: Mailbox, server: LiveServer, column: str, age: timedelta
) -> None:
    session = anon.as_(verified_session(anon, mailbox))
    assert session.data("{ me { role } }") == {"me": {"role": "OWNER"}}

    async def expire() -> None:
        async with server.db.write() as s:
            await s.execute(update(Session).values({column: utcnow() + age}))

    server.run(expire())
    assert session("{ me { role } }", status=401)["errors"][0]["extensions"]["code"] == (
        "UNAUTHENTICATED"
    )


def _age_sessions(server: LiveServer, by: timedelta) -> None:
    """Moves every session's recorded last use ``by`` into the past, as the clock would."""

    async def age() -> None:
        async with server.db.write() as s:
            rows = (await s.execute(select(Session.id, Session.last_used_at))).all()
            for id_, last_used_at in rows:
                stmt = update(Session).where(Session.id == id_)  # type: ignore[arg-type]
                await s.execute(stmt.values(last_used_at=last_used_at - by))

    server.run(age())


def test_a_session_in_use_never_expires_from_idleness(
    anon: GraphQLClient, mailbox: Mailbox, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a one-minute idle timeout
    monkeypatch.setattr(server.settings, "session_idle_timeout_minutes", 1)
    session = anon.as_(verified_session(anon, mailbox))
    # When the session is used every 10 s for two minutes
    for _ in range(12):
        _age_sessions(server, timedelta(seconds=10))
        # Then every request is answered
        assert session.data("{ me { role } }") == {"me": {"role": "OWNER"}}


def test_an_unused_session_expires_soon_after_the_idle_timeout(
    anon: GraphQLClient, mailbox: Mailbox, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.settings, "session_idle_timeout_minutes", 1)
    session = anon.as_(verified_session(anon, mailbox))
    # Unused for the timeout plus a tenth of it (the precision of the recorded last use)
    _age_sessions(server, timedelta(seconds=67))
    body = session("{ me { role } }", status=401)
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    "header",
    ["Bearer nonsense", "Bearer lgk_wrong", "Bearer lgs_wrong", "Basic dXNlcjpwYXNz", "Bearer"],
)
def test_bad_credentials_are_refused(http: httpx.Client, header: str) -> None:
    response = http.post(
        "/graphql", json={"query": "{ leads { totalCount } }"}, headers={"Authorization": header}
    )
    assert response.status_code == 401
    assert response.json()["errors"][0]["message"] == (
        "The access token is invalid, expired or revoked; sign in again."
    )


def test_no_credentials_is_a_401_only_when_nothing_could_be_answered(
    anon: GraphQLClient, http: httpx.Client
) -> None:
    whole = http.post(
        "/graphql", json={"query": "{ leads { totalCount } }"}, headers={"Authorization": ""}
    )
    mixed = http.post(
        "/graphql",
        json={"query": 'mutation { requestSignInCode(input: {email: "x@example.com"}) { sent } }'},
        headers={"Authorization": ""},
    )
    assert whole.status_code == 401
    assert whole.json()["errors"][0]["message"] == (
        "Sign in first: send 'Authorization: Bearer <session token or API key>'."
    )
    assert mixed.status_code == 200


def test_introspection_for_anonymous_callers_can_be_switched_off(
    anon: GraphQLClient, gql: GraphQLClient, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = "{ __schema { queryType { name } } }"
    assert anon.data(query) == {"__schema": {"queryType": {"name": "Query"}}}

    monkeypatch.setattr(server.settings, "anonymous_introspection", False)

    refused = anon(query)
    assert "data" not in refused
    assert refused["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert gql.data(query) == {"__schema": {"queryType": {"name": "Query"}}}


def test_graphiql_needs_no_token(http: httpx.Client) -> None:
    page = http.get("/graphql", headers={"Accept": "text/html", "Authorization": ""})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()
