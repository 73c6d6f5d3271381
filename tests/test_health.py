"""Liveness, readiness and request ids."""

import httpx


def test_healthz_answers_while_the_process_is_up(http: httpx.Client) -> None:
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_database_reachable(http: httpx.Client) -> None:
    response = http.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_every_response_carries_a_request_id(http: httpx.Client) -> None:
    assert len(http.get("/healthz").headers["x-request-id"]) == 32
    echoed = http.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert echoed.headers["x-request-id"] == "trace-123"
    unsafe = http.get("/healthz", headers={"X-Request-ID": "bad id\twith space"})
    assert unsafe.headers["x-request-id"] != "bad id\twith space"
