"""The benchmark of issues 5 and 9: `make bench` (or `python -m bench`).

On PostgreSQL and on SQLite in turn: seeds a fresh database with N leads and N/10 clients, starts
the server (one worker and two), the app floor (bench/floor.py), the raw floor (bench/raw.py) and
on PostgreSQL the PostGraphile peer (bench/peer.py), checks that they answer alike, drives them
in interleaved rounds and writes `bench/results.md`. See bench/README.md.
"""

import os

# Every bench drives one credential as fast as the machine allows; with the server's default
# rate limit (issue 13: 1,000 points, 50 a second) most requests would be refused RATE_LIMITED.
# So the servers a bench starts (they inherit this environment) get a bucket that never empties:
# the limits are still checked and charged, as in production; `python -m bench.limits` measures
# what that costs against RATE_LIMITS=false.
os.environ.setdefault("RATE_LIMIT_MAXIMUM", "1000000000")
os.environ.setdefault("RATE_LIMIT_RESTORE_RATE", "100000000")
