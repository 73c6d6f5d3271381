"""GraphiQL at GET /graphql: Leadgraph's page (its title, a starting document that shows how to
authenticate, headers kept out of localStorage unless the user opts in), loading every asset from
our own /graphql/assets/ (installed by `make graphiql`), each one matching the page's
subresource-integrity hash, and falling back to the CDN, with a warning, when the assets are
missing."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from strawberry.asgi import GraphQL

import server as server_module
from schema import build_schema
from tests.conftest import GraphQLClient, LiveServer, Mailbox, without_cost
from tests.test_auth_flows import PASSWORD, sign_up

ASSETS_PATH = "/graphql/assets/"


class AssetTags(HTMLParser):
    """Collects the page's scripts and stylesheets (url, integrity) and every src/href value."""

    def __init__(self) -> None:
        super().__init__()
        self.assets: list[tuple[str, str | None]] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        if tag == "script" and attributes.get("src"):
            self.assets.append((attributes["src"] or "", attributes.get("integrity")))
        if tag == "link" and attributes.get("rel") == "stylesheet":
            self.assets.append((attributes.get("href") or "", attributes.get("integrity")))


def parse(page: str) -> AssetTags:
    tags = AssetTags()
    tags.feed(page)
    return tags


def sri_sha384(content: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(content).digest()).decode()


@pytest.fixture(scope="module")
def page(server: LiveServer, http: httpx.Client) -> str:
    assets_dir = server.settings.graphiql_assets_dir
    assert all((assets_dir / f).is_file() for f in server_module.GRAPHIQL_FILES), (
        f"GraphiQL assets missing from {assets_dir}: run `make graphiql`"
    )
    response = http.get("/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    return response.text


def script_constant(page: str, name: str) -> str:
    """The value of a `const NAME = "...";` string in the page's script."""
    match = re.search(rf'const {name} = ("(?:[^"\\]|\\.)*");', page)
    assert match, f"{name} not found in the page"
    value: str = json.loads(match.group(1))
    return value


def test_get_with_accept_html_serves_leadgraphs_graphiql(page: str) -> None:
    assert "<title>Leadgraph</title>" in page
    assert "Strawberry" not in page
    assert 'id="graphiql"' in page


def test_the_starting_document_explains_the_headers_tab(page: str) -> None:
    document = script_constant(page, "EXAMPLE_QUERY")
    assert document.startswith("# Leadgraph\n")
    assert "Headers" in document
    assert '#   {"Authorization": "Bearer <token>"}\n' in document
    assert "Persist" in document
    assert json.loads(script_constant(page, "EXAMPLE_VARIABLES")) == {"email": "", "password": ""}


def test_the_starting_document_signs_in_and_its_token_works_in_the_headers(
    page: str, anon: GraphQLClient, mailbox: Mailbox
) -> None:
    """Given a verified account, when its owner fills in the starting variables and runs SignIn,
    then the token works as the Headers tab's Authorization for the document's Me."""
    sign_up(anon)
    code = mailbox.code_for("ada@example.com")
    anon.data(
        "mutation ($input: VerifyEmailInput!) { verifyEmail(input: $input) { token } }",
        {"input": {"email": "ada@example.com", "code": code}},
    )
    document = script_constant(page, "EXAMPLE_QUERY")
    variables = json.loads(script_constant(page, "EXAMPLE_VARIABLES"))
    variables |= {"email": "ada@example.com", "password": PASSWORD}

    signed_in = anon.http.post(
        "/graphql",
        json={"query": document, "variables": variables, "operationName": "SignIn"},
        headers={"Authorization": ""},
    ).json()
    assert "errors" not in signed_in, signed_in
    payload = signed_in["data"]["signIn"]
    assert payload["userErrors"] == []
    assert payload["viewer"] == {"role": "OWNER", "workspace": {"name": "Analytical Engines"}}

    me = anon.http.post(
        "/graphql",
        json={"query": document, "operationName": "Me"},
        headers={"Authorization": f"Bearer {payload['token']}"},
    )
    assert without_cost(me.json()) == {
        "data": {
            "me": {
                "role": "OWNER",
                "user": {"email": "ada@example.com", "name": "Ada Lovelace"},
                "apiKey": None,
                "workspace": {"name": "Analytical Engines"},
            }
        }
    }


def test_headers_are_not_persisted_unless_the_user_turns_it_on(page: str) -> None:
    # GraphiQL's own Settings > Persist headers is the opt-in; its choice is read back at load.
    assert "shouldPersistHeaders: true" not in page
    assert "shouldPersistHeaders: headersPersisted()," in page
    assert "showPersistHeadersSettings: true," in page
    assert 'localStorage.getItem(PERSIST_HEADERS_KEY) === "true"' in page
    # History and favorites, which GraphiQL saves with each run's headers, go through a storage
    # that drops them.
    assert "storage: storage," in page
    assert "delete item.headers;" in page


def test_variables_stay_out_of_the_address_bar(page: str) -> None:
    assert "updateURL({ variables" not in page
    assert "updateURL({ q: newQuery })" in page


def test_a_changed_strawberry_page_fails_loudly() -> None:
    with pytest.raises(RuntimeError, match="GraphiQL page"):
        server_module.leadgraph_graphiql("<html><title>Something else</title></html>")


def test_every_script_and_stylesheet_is_self_hosted(page: str) -> None:
    tags = parse(page)
    assert len(tags.assets) == len(server_module.GRAPHIQL_FILES)
    assert sorted(url for url, _ in tags.assets) == sorted(
        ASSETS_PATH + f for f in server_module.GRAPHIQL_FILES
    )
    remote = [url for url in tags.urls if url.lower().startswith(("http://", "https://", "//"))]
    assert not remote, f"the page loads from other hosts: {remote}"
    assert server_module.GRAPHIQL_CDN not in page


def test_every_asset_is_served_and_matches_its_integrity_hash(
    page: str, http: httpx.Client
) -> None:
    for url, integrity in parse(page).assets:
        assert integrity and integrity.startswith("sha384-"), f"{url} has no sha384 integrity"
        response = http.get(url)
        assert response.status_code == 200, url
        assert sri_sha384(response.content) == integrity, f"{url} does not match its integrity"


def test_the_self_hosted_page_differs_from_leadgraphs_cdn_page_only_in_asset_urls(
    server: LiveServer,
) -> None:
    stock = GraphQL(build_schema()).graphql_ide_html
    ours = server_module.graphiql_page(server.settings.graphiql_assets_dir, stock)
    cdn_page = server_module.leadgraph_graphiql(stock)
    assert ours == cdn_page.replace(server_module.GRAPHIQL_CDN, ASSETS_PATH)
    assert [i for _, i in parse(ours).assets] == [i for _, i in parse(stock).assets]


def test_missing_assets_fall_back_to_the_cdn_page_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stock = GraphQL(build_schema()).graphql_ide_html
    with caplog.at_level(logging.WARNING, logger="leadgraph"):
        page = server_module.graphiql_page(tmp_path / "nonexistent", stock)
    assert page == server_module.leadgraph_graphiql(stock)
    assert server_module.GRAPHIQL_CDN in page
    [record] = [r for r in caplog.records if r.name == "leadgraph"]
    assert record.levelno == logging.WARNING
    assert "GraphiQL assets not found" in record.getMessage()
    assert server_module.GRAPHIQL_CDN in record.getMessage()
