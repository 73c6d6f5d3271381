"""Cost and rate limits (issue 13): what they cost a request. Q1 against two servers on one
database, one with the limits on (MAX_QUERY_COST and a rate-limit bucket per credential, the
bucket large enough never to throttle) and one with them off (``RATE_LIMITS=false``,
``MAX_QUERY_COST=0``). ``python -m bench.limits`` (``make bench-limits``; bench/README.md, "Cost
and rate limits").

1. A database of BENCH_N leads (20,000 by default: Q1 reads the first page) at
   bench/.data/documents.db (shared with bench.documents), or the PostgreSQL database
   BENCH_DATABASE_URL names (it must contain "bench"); reused when it already holds BENCH_N.
2. Both servers (one worker each, no webhook sender) and one ADMIN key.
3. Both answers checked to hold the same data (and the limited one ``extensions.cost``); then
   BENCH_ROUNDS rounds, each a wrk run of BENCH_DURATION seconds with BENCH_CONNECTIONS
   connections against each server, the side that goes first alternating: req/s and the
   server's CPU per request (user + system, from /proc), and their medians and ratio.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics

import httpx
from sqlalchemy.engine import make_url

from bench import load
from bench.documents import Q1, VARIABLES, ab_rounds, ab_settings, seeded, table
from bench.webhooks import admin_key, server

SIDES = {
    "limits on": {
        "MAX_QUERY_COST": "1000",
        "RATE_LIMITS": "true",
        # Never throttled: what is measured is the checking and the charging.
        "RATE_LIMIT_MAXIMUM": "1000000000",
        "RATE_LIMIT_RESTORE_RATE": "100000000",
    },
    "limits off": {"MAX_QUERY_COST": "0", "RATE_LIMITS": "false"},
}


def log(message: str) -> None:
    print(f"[bench.limits] {message}", flush=True)


def main() -> int:
    ab = ab_settings()
    url, rounds, duration, connections = ab.url, ab.rounds, ab.duration, ab.connections
    seeded(url, ab.n, log)
    key = asyncio.run(admin_key(url))
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    body = json.dumps({"query": Q1, "variables": VARIABLES})
    spec = load.LoadSpec("/graphql", headers, body)
    with (
        server(url, sender=False, **SIDES["limits on"]) as on,
        server(url, sender=False, **SIDES["limits off"]) as off,
    ):
        servers = {"limits on": on, "limits off": off}
        answers = {}
        for side, svc in servers.items():
            with httpx.Client(base_url=svc.url, timeout=60) as client:
                answers[side] = client.post("/graphql", content=body, headers=headers).json()
        limited, plain = answers["limits on"], answers["limits off"]
        assert "errors" not in limited and limited["data"] == plain["data"], answers
        cost = limited["extensions"]["cost"]
        assert "cost" not in plain.get("extensions", {}), plain
        log(f"Q1's cost: requested {cost['requestedQueryCost']}, actual {cost['actualQueryCost']}")
        sides = {side: (svc, spec) for side, svc in servers.items()}
        results = ab_rounds(sides, rounds, duration, connections, log)
    engine = "SQLite" if make_url(url).get_backend_name() == "sqlite" else "PostgreSQL"
    print(
        f"\n{engine}, Q1 (leads(first: 20)), {rounds} rounds of {duration:.0f} s, "
        f"{connections} connections, load {os.getloadavg()[0]:.1f}:\n"
    )
    table(results, "server")
    medians = {side: statistics.median(r for r, _ in runs) for side, runs in results.items()}
    ratios = [a[0] / b[0] for a, b in zip(results["limits on"], results["limits off"], strict=True)]
    print(
        f"\nreq/s with limits on / off: {medians['limits on'] / medians['limits off']:.2f} x "
        f"(medians); per round {' '.join(f'{r:.2f}' for r in ratios)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
