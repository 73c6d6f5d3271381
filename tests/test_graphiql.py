"""GraphiQL at GET /graphql: the page loads every asset from our own /graphql/assets/ (installed
by `make graphiql`), each one matching the page's subresource-integrity hash, and falls back to
the stock CDN page, with a warning, when the assets are missing."""

from __future__ import annotations

import base64
import hashlib
import logging
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from strawberry.asgi import GraphQL

import server as server_module
from schema import build_schema
from tests.conftest import LiveServer

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


def test_get_with_accept_html_serves_graphiql(page: str) -> None:
    assert "<title>Strawberry GraphiQL</title>" in page
    assert 'id="graphiql"' in page


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


def test_the_self_hosted_page_differs_from_the_stock_one_only_in_asset_urls(
    server: LiveServer,
) -> None:
    stock = GraphQL(build_schema()).graphql_ide_html
    ours = server_module.graphiql_page(server.settings.graphiql_assets_dir, stock)
    assert ours == stock.replace(server_module.GRAPHIQL_CDN, ASSETS_PATH)
    assert [i for _, i in parse(ours).assets] == [i for _, i in parse(stock).assets]


def test_missing_assets_fall_back_to_the_cdn_page_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stock = GraphQL(build_schema()).graphql_ide_html
    with caplog.at_level(logging.WARNING, logger="leadgraph"):
        page = server_module.graphiql_page(tmp_path / "nonexistent", stock)
    assert page == stock
    [record] = [r for r in caplog.records if r.name == "leadgraph"]
    assert record.levelno == logging.WARNING
    assert "GraphiQL assets not found" in record.getMessage()
    assert server_module.GRAPHIQL_CDN in record.getMessage()
