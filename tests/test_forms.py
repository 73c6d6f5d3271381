"""Web forms (issue 11): ADMINs manage them through the API; anyone posts to /forms/{key}
(urlencoded, multipart or JSON), and the post becomes a lead of the form's workspace. Every
post here goes over HTTP to the suite's server; the browser test drives a real Chromium."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.browser import browser_page, chromium
from tests.conftest import GraphQLClient, LiveServer, without_cost

USER_ERRORS = "userErrors { field message code }"
FORM = "id name key source allowedOrigins redirectUrl createdAt"
CREATE_FORM = f"""
mutation ($input: CreateLeadFormInput!) {{
  createLeadForm(input: $input) {{ form {{ {FORM} }} {USER_ERRORS} }}
}}
"""
DELETE_FORM = f"mutation ($id: ID!) {{ deleteLeadForm(id: $id) {{ deletedFormId {USER_ERRORS} }} }}"
FORMS = f"{{ leadForms {{ {FORM} }} }}"
NODE = f"query ($id: ID!) {{ node(id: $id) {{ __typename ... on LeadForm {{ {FORM} }} }} }}"
LEADS = """
{
  leads(first: 100, orderBy: {field: CREATED_AT, direction: ASC}) {
    nodes {
      email firstName lastName phone company city state postalCode source notes status score
      metadata createdBy { __typename }
    }
  }
}
"""
CREATE_API_KEY = """
mutation ($role: Role!) { createApiKey(input: {name: "forms", role: $role}) { secret } }
"""
KEY = re.compile(r"^[A-Za-z0-9_-]{32}$")
THANKS = "https://example.com/thanks?from=form"
SITE = "https://www.example.com"
# A lead as a form makes it: only what was posted, the rest as CreateLeadInput's defaults.
BLANK_LEAD: dict[str, Any] = {
    "firstName": None,
    "lastName": None,
    "phone": None,
    "company": None,
    "city": None,
    "state": None,
    "postalCode": None,
    "source": None,
    "notes": None,
    "status": "NEW",
    "score": 0,
    "metadata": {},
    "createdBy": None,
}


def new_form(gql: GraphQLClient, **values: Any) -> dict[str, Any]:
    payload = gql.data(CREATE_FORM, {"input": {"name": "Contact us", **values}})["createLeadForm"]
    assert payload["userErrors"] == [], payload["userErrors"]
    form: dict[str, Any] = payload["form"]
    return form


def leads(gql: GraphQLClient) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = gql.data(LEADS)["leads"]["nodes"]
    return nodes


def lead(**values: Any) -> dict[str, Any]:
    return {**BLANK_LEAD, **values}


def post(
    http: httpx.Client, key: str, *, headers: dict[str, str] | None = None, **kwargs: Any
) -> httpx.Response:
    """A post to the form as an anonymous visitor (no credential)."""
    return http.post(f"/forms/{key}", headers={"Authorization": "", **(headers or {})}, **kwargs)


def error(message: str, code: str, field: str | None = None) -> dict[str, Any]:
    extensions: dict[str, Any] = {"code": code}
    if field is not None or code in ("INVALID", "REQUIRED"):
        extensions["field"] = field
    return {"errors": [{"message": message, "extensions": extensions}]}


# ------------------------------------------------------------------ the API


def test_an_admin_creates_a_form_with_a_random_key(gql: GraphQLClient) -> None:
    form = new_form(
        gql,
        name="  Contact us ",
        source="website",
        allowedOrigins=["HTTPS://WWW.Example.com:443", "http://127.0.0.1:8080"],
        redirectUrl=THANKS,
    )

    assert KEY.match(form["key"])
    assert form == {
        "id": form["id"],
        "name": "Contact us",
        "key": form["key"],
        "source": "website",
        "allowedOrigins": [SITE, "http://127.0.0.1:8080"],
        "redirectUrl": THANKS,
        "createdAt": form["createdAt"],
    }
    assert new_form(gql)["key"] != form["key"]


def test_create_form_reports_every_bad_field(gql: GraphQLClient) -> None:
    payload = gql.data(
        CREATE_FORM,
        {
            "input": {
                "name": " ",
                "source": "s" * 101,
                "allowedOrigins": [SITE, "https://www.example.com/", "ftp://example.com"],
                "redirectUrl": "/thanks",
            }
        },
    )["createLeadForm"]

    origin = (
        "An origin is scheme://host[:port], http or https, with no path (not even a "
        "trailing /), e.g. https://www.example.com"
    )
    assert payload == {
        "form": None,
        "userErrors": [
            {
                "field": ["input", "name"],
                "message": "This field is required and cannot be blank.",
                "code": "REQUIRED",
            },
            {
                "field": ["input", "source"],
                "message": "String should have at most 100 characters",
                "code": "INVALID",
            },
            {"field": ["input", "allowedOrigins", "1"], "message": origin, "code": "INVALID"},
            {"field": ["input", "allowedOrigins", "2"], "message": origin, "code": "INVALID"},
            {
                "field": ["input", "redirectUrl"],
                "message": "The redirect URL must be an absolute http(s) URL: "
                "https://example.com/thanks",
                "code": "INVALID",
            },
        ],
    }
    assert gql.data(FORMS) == {"leadForms": []}


def test_a_form_name_is_at_most_100_characters(gql: GraphQLClient) -> None:
    payload = gql.data(CREATE_FORM, {"input": {"name": "n" * 101}})["createLeadForm"]

    assert payload["userErrors"] == [
        {
            "field": ["input", "name"],
            "message": "Name must be at most 100 characters.",
            "code": "INVALID",
        }
    ]


def test_forms_are_listed_oldest_first_and_found_by_node(gql: GraphQLClient) -> None:
    first, second = new_form(gql, name="First"), new_form(gql, name="Second")

    assert gql.data(FORMS) == {"leadForms": [first, second]}
    assert gql.data(NODE, {"id": second["id"]}) == {"node": {"__typename": "LeadForm", **second}}


def test_a_deleted_form_takes_no_more_posts(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql)

    payload = gql.data(DELETE_FORM, {"id": form["id"]})["deleteLeadForm"]

    assert payload == {"deletedFormId": form["id"], "userErrors": []}
    assert gql.data(FORMS) == {"leadForms": []}
    response = post(http, form["key"], data={"email": "ada@example.com"})
    assert (response.status_code, response.json()) == (
        404,
        error("No web form has this key.", "NOT_FOUND"),
    )
    assert leads(gql) == []


def test_deleting_an_unknown_form_is_not_found(gql: GraphQLClient) -> None:
    form = new_form(gql)
    gql.data(DELETE_FORM, {"id": form["id"]})

    payload = gql.data(DELETE_FORM, {"id": form["id"]})["deleteLeadForm"]

    assert payload == {
        "deletedFormId": None,
        "userErrors": [
            {"field": ["id"], "message": "No lead form with this ID.", "code": "NOT_FOUND"}
        ],
    }


@pytest.mark.parametrize("role", ["MEMBER", "VIEWER"])
def test_only_admins_see_or_manage_forms(gql: GraphQLClient, role: str) -> None:
    form = new_form(gql)
    caller = gql.as_(gql.data(CREATE_API_KEY, {"role": role})["createApiKey"]["secret"])
    message = f"This needs the ADMIN role in this workspace (you have {role})."

    for document, variables, field in [
        (FORMS, {}, "leadForms"),
        (CREATE_FORM, {"input": {"name": "Mine"}}, "createLeadForm"),
        (DELETE_FORM, {"id": form["id"]}, "deleteLeadForm"),
    ]:
        body = caller(document, variables)
        assert body["data"] is None
        assert [(e["path"], e["message"], e["extensions"]) for e in body["errors"]] == [
            ([field], message, {"code": "FORBIDDEN"})
        ]
    assert caller(NODE, {"id": form["id"]}) == {"data": {"node": None}}
    assert gql.data(FORMS) == {"leadForms": [form]}


# ------------------------------------------------------------------ posts


def test_a_urlencoded_post_makes_a_lead(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql, source="website")

    response = post(
        http,
        form["key"],
        data={
            "email": "Ada@Example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "company": "Analytical Engines",
            "phone": "",  # an input left empty: left out
            "score": "42",
            "utm_source": "newsletter",
            "utm_campaign": "spring",
            "question": "Do you ship to Texas?",
        },
    )

    assert (response.status_code, response.json()) == (201, {"ok": True})
    assert response.headers["content-type"] == "application/json"
    assert leads(gql) == [
        lead(
            email="Ada@example.com",
            firstName="Ada",
            lastName="Lovelace",
            company="Analytical Engines",
            source="website",
            # status and score are the team's to judge: a post's are kept as metadata.
            metadata={
                "score": "42",
                "utm_source": "newsletter",
                "utm_campaign": "spring",
                "question": "Do you ship to Texas?",
            },
        )
    ]


def test_a_post_updates_the_lead_of_its_email(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql, source="website")
    first = {"email": "ada@example.com", "firstName": "Ada", "city": "Paris", "utm_term": "a"}
    post(http, form["key"], data=first | {"utm_source": "ad"})

    response = post(
        http, form["key"], data={"email": "ADA@example.com", "company": "Engines", "utm_term": "x"}
    )

    assert (response.status_code, response.json()) == (201, {"ok": True})
    # The email as first posted stays; metadata gains the new keys (first touch kept).
    assert leads(gql) == [
        lead(
            email="ada@example.com",
            firstName="Ada",
            city="Paris",
            company="Engines",
            source="website",
            metadata={"utm_source": "ad", "utm_term": "x"},
        )
    ]


def test_a_multipart_post_takes_snake_case_names(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql)

    response = post(
        http,
        form["key"],
        files={
            "email": (None, "grace@example.com"),
            "first_name": (None, "Grace"),
            "postal_code": (None, "20500"),
            "interest": (None, "compilers"),
        },
    )

    assert response.request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert (response.status_code, response.json()) == (201, {"ok": True})
    assert leads(gql) == [
        lead(
            email="grace@example.com",
            firstName="Grace",
            postalCode="20500",
            metadata={"interest": "compilers"},
        )
    ]


def test_a_json_post_takes_either_spelling(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql)

    response = post(
        http,
        form["key"],
        json={
            "email": "alan@example.com",
            "first_name": "Alan",
            "lastName": "Turing",
            "score": 7,
            "state": "Texas",
            "metadata": {"plan": "pro", "utm_medium": "ignored"},
            "utm_medium": "email",
            "seats": 3,
        },
    )

    assert (response.status_code, response.json()) == (201, {"ok": True})
    assert leads(gql) == [
        lead(
            email="alan@example.com",
            firstName="Alan",
            lastName="Turing",
            state="Texas",
            metadata={"plan": "pro", "utm_medium": "email", "seats": 3, "score": 7},
        )
    ]


def test_a_field_posted_twice_is_kept_as_a_list(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql)

    response = post(
        http,
        form["key"],
        content="email=ada%40example.com&topic=pricing&topic=support",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 201
    assert leads(gql) == [lead(email="ada@example.com", metadata={"topic": ["pricing", "support"]})]


def test_the_forms_source_wins_over_a_posted_one(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql, source="website")

    response = post(http, form["key"], data={"email": "ada@example.com", "source": "friend"})

    assert response.status_code == 201
    assert leads(gql) == [
        lead(email="ada@example.com", source="website", metadata={"source": "friend"})
    ]


def test_a_form_without_source_takes_the_posted_one(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql)

    post(http, form["key"], data={"email": "ada@example.com", "source": "friend"})

    assert leads(gql) == [lead(email="ada@example.com", source="friend")]


def test_a_browser_post_is_redirected(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql, redirectUrl=THANKS)

    response = post(
        http,
        form["key"],
        data={"email": "ada@example.com"},
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )

    assert (response.status_code, response.headers["location"]) == (303, THANKS)
    assert [lead["email"] for lead in leads(gql)] == ["ada@example.com"]


def test_a_script_asking_for_json_gets_201_even_with_a_redirect(
    gql: GraphQLClient, http: httpx.Client
) -> None:
    form = new_form(gql, redirectUrl=THANKS)

    by_json = post(http, form["key"], json={"email": "ada@example.com"})
    by_form = post(
        http,
        form["key"],
        data={"email": "grace@example.com"},
        headers={"Accept": "application/json"},
    )

    assert (by_json.status_code, by_json.json()) == (201, {"ok": True})
    assert (by_form.status_code, by_form.json()) == (201, {"ok": True})
    assert [lead["email"] for lead in leads(gql)] == ["ada@example.com", "grace@example.com"]


# ------------------------------------------------------------------ spam, abuse, bad input


def test_a_filled_honeypot_stores_nothing_but_looks_accepted(
    gql: GraphQLClient, http: httpx.Client
) -> None:
    redirecting, plain = new_form(gql, redirectUrl=THANKS), new_form(gql)
    spam = {"email": "bot@example.com", "_gotcha": "http://spam.example"}

    redirected = post(http, redirecting["key"], data=spam)
    answered = post(http, plain["key"], json=spam)

    assert (redirected.status_code, redirected.headers["location"]) == (303, THANKS)
    assert (answered.status_code, answered.json()) == (201, {"ok": True})
    assert leads(gql) == []


def test_an_empty_honeypot_is_not_stored(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql)

    post(http, form["key"], data={"email": "ada@example.com", "_gotcha": ""})

    assert leads(gql) == [lead(email="ada@example.com")]


def test_too_many_posts_from_one_address_are_refused(
    gql: GraphQLClient, http: httpx.Client, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.app.state.settings, "form_rate_limit_per_minute", 2)
    form, other = new_form(gql), new_form(gql)
    post(http, form["key"], data={"email": "one@example.com"})
    post(http, other["key"], data={"email": "two@example.com"})

    response = post(http, form["key"], data={"email": "three@example.com"})

    assert response.status_code == 429
    assert 1 <= int(response.headers["retry-after"]) <= 60
    seconds = response.headers["retry-after"]
    assert without_cost(response.json()) == error(
        f"Too many posts from this address; try again in {seconds} seconds.", "RATE_LIMITED"
    )
    assert [lead["email"] for lead in leads(gql)] == ["one@example.com", "two@example.com"]


def test_a_body_over_the_forms_limit_is_refused(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql)
    limit = 64 * 1024

    response = post(http, form["key"], data={"email": "ada@example.com", "notes": "x" * limit})

    assert (response.status_code, response.json()) == (
        413,
        error(
            f"The request body is larger than {limit} bytes, the most accepted here.",
            "PAYLOAD_TOO_LARGE",
        ),
    )
    assert leads(gql) == []


def test_a_bad_email_is_refused_with_400(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql)

    response = post(http, form["key"], json={"email": "not an email", "first_name": "Ada"})

    assert (response.status_code, response.json()) == (
        400,
        error("An email address must have an @-sign.", "INVALID", "email"),
    )
    assert leads(gql) == []


def test_problems_name_every_field_as_posted(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql)

    response = post(http, form["key"], data={"first_name": "Ada", "lastName": "L" * 101})

    assert response.status_code == 400
    assert without_cost(response.json()) == {
        "errors": [
            {
                "message": "String should have at most 100 characters",
                "extensions": {"code": "INVALID", "field": "lastName"},
            },
            {
                "message": "Field required",
                "extensions": {"code": "REQUIRED", "field": "email"},
            },
        ]
    }
    assert leads(gql) == []


def test_a_bad_email_from_a_browser_goes_back_with_the_error(
    gql: GraphQLClient, http: httpx.Client
) -> None:
    form = new_form(gql, redirectUrl=THANKS + "#top")

    response = post(http, form["key"], data={"email": "ada@"})

    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path, location.fragment) == (
        "https",
        "example.com",
        "/thanks",
        "top",
    )
    assert parse_qs(location.query) == {
        "from": ["form"],
        "error": ["email"],
        "message": ["There must be something after the @-sign."],
    }
    assert leads(gql) == []


def test_nul_in_a_post_is_refused(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql)

    response = post(http, form["key"], json={"email": "ada@example.com", "note\u0000": "x"})

    assert (response.status_code, response.json()) == (
        400,
        error(
            "The text holds a NUL character or an unpaired UTF-16 surrogate, which cannot be "
            "stored.",
            "INVALID",
            "note\u0000",
        ),
    )
    assert leads(gql) == []


@pytest.mark.parametrize(
    ("content", "content_type", "status", "message", "code"),
    [
        (
            b"email=ada@example.com",
            "text/plain",
            415,
            "Post the form as application/x-www-form-urlencoded, multipart/form-data or "
            "application/json.",
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (b"{", "application/json", 400, "The body is not valid JSON (UTF-8).", "BAD_REQUEST"),
        (
            b"[]",
            "application/json",
            400,
            "The body must be a JSON object of fields.",
            "BAD_REQUEST",
        ),
    ],
)
def test_a_body_that_is_no_form_is_refused(
    gql: GraphQLClient,
    http: httpx.Client,
    content: bytes,
    content_type: str,
    status: int,
    message: str,
    code: str,
) -> None:
    form = new_form(gql)

    response = post(http, form["key"], content=content, headers={"Content-Type": content_type})

    assert (response.status_code, response.json()) == (status, error(message, code))
    assert leads(gql) == []


def test_an_unknown_key_is_not_found(http: httpx.Client) -> None:
    response = post(http, "no-such-key", data={"email": "ada@example.com"})

    assert (response.status_code, response.json()) == (
        404,
        error("No web form has this key.", "NOT_FOUND"),
    )


# ------------------------------------------------------------------ CORS


def test_a_preflight_from_an_allowed_origin_is_answered(
    gql: GraphQLClient, http: httpx.Client
) -> None:
    form = new_form(gql, allowedOrigins=[SITE])

    response = http.options(
        f"/forms/{form['key']}",
        headers={
            "Origin": SITE,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )

    assert response.status_code == 204
    assert {k: v for k, v in response.headers.items() if k.startswith("access-control")} == {
        "access-control-allow-origin": SITE,
        "access-control-allow-methods": "POST",
        "access-control-allow-headers": "Content-Type, X-Requested-With, X-Request-ID",
        "access-control-max-age": "600",
        "access-control-expose-headers": "Retry-After, X-Request-ID",
    }
    assert response.headers["vary"] == "Origin"


def test_a_preflight_from_another_origin_gets_no_cors_headers(
    gql: GraphQLClient, http: httpx.Client
) -> None:
    form = new_form(gql, allowedOrigins=[SITE])

    response = http.options(
        f"/forms/{form['key']}",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert response.status_code == 403
    assert not [k for k in response.headers if k.startswith("access-control")]
    assert without_cost(response.json()) == error(
        "This origin is not among the form's allowedOrigins: its scripts may not post to it "
        "(a plain HTML form may).",
        "FORBIDDEN",
    )


def test_an_allowed_origin_may_read_the_answer(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql, allowedOrigins=[SITE])

    response = post(http, form["key"], json={"email": "ada@example.com"}, headers={"Origin": SITE})

    assert response.status_code == 201
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.headers["vary"] == "Origin"


def test_another_origins_post_is_taken_but_not_readable(
    gql: GraphQLClient, http: httpx.Client
) -> None:
    # A plain HTML form on any site may post (browsers send its Origin too); only scripts of
    # the allowed origins may read what comes back.
    form = new_form(gql)

    response = post(http, form["key"], data={"email": "ada@example.com"}, headers={"Origin": SITE})

    assert response.status_code == 201
    assert "access-control-allow-origin" not in response.headers
    assert [lead["email"] for lead in leads(gql)] == ["ada@example.com"]


def test_a_get_is_not_allowed(gql: GraphQLClient, http: httpx.Client) -> None:
    form = new_form(gql)

    response = http.get(f"/forms/{form['key']}")

    assert response.status_code == 405
    assert json.loads(response.text)["errors"][0]["extensions"] == {"code": "METHOD_NOT_ALLOWED"}


# ------------------------------------------------------------------ a real browser

PAGE = """<!doctype html>
<html>
  <head><meta charset="utf-8"><title>Contact us</title></head>
  <body>
    <form action="{action}" method="post">
      <label>Email <input type="email" name="email" required></label>
      <label>First name <input type="text" name="firstName"></label>
      <label>Company <input type="text" name="company"></label>
      <input type="hidden" name="utm_source" value="newsletter">
      <div style="position: absolute; left: -5000px" aria-hidden="true">
        <input type="text" name="_gotcha" tabindex="-1" autocomplete="off">
      </div>
      <button type="submit">Send</button>
    </form>
  </body>
</html>
"""
THANKS_PAGE = "<!doctype html><html><body><h1>Thank you!</h1></body></html>"


class _Site(ThreadingHTTPServer):
    pages: dict[str, str]


class _Pages(BaseHTTPRequestHandler):
    server: _Site

    def do_GET(self) -> None:
        body = self.server.pages.get(self.path.partition("?")[0])
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[_Site]:
    """Another origin on 127.0.0.1: the page a form is embedded in, and its thank-you page."""
    found = _Site(("127.0.0.1", 0), _Pages)
    found.pages = {}
    thread = threading.Thread(target=found.serve_forever, daemon=True)
    thread.start()
    yield found
    found.shutdown()
    found.server_close()
    thread.join(timeout=10)


def test_a_browser_submits_an_embedded_form(
    gql: GraphQLClient, server: LiveServer, site: _Site
) -> None:
    executable = chromium()
    assert executable is not None, "Chromium is not installed: `make test` installs it"
    origin = f"http://127.0.0.1:{site.server_address[1]}"
    form = new_form(gql, source="website", redirectUrl=f"{origin}/thanks")
    site.pages = {
        "/contact": PAGE.format(action=f"{server.url}/forms/{form['key']}"),
        "/thanks": THANKS_PAGE,
    }

    with browser_page(executable) as page:
        page.goto(f"{origin}/contact")
        page.type_into("input[name=email]", "ada@example.com")
        page.type_into("input[name=firstName]", "Ada")
        page.evaluate("document.querySelector('button[type=submit]').click()")
        page.wait_for(f"location.href === {json.dumps(origin + '/thanks')}")
        heading = page.evaluate(
            "document.querySelector('h1') && document.querySelector('h1').textContent"
        )

    assert heading == "Thank you!"
    assert leads(gql) == [
        lead(
            email="ada@example.com",
            firstName="Ada",
            source="website",
            metadata={"utm_source": "newsletter"},
        )
    ]
