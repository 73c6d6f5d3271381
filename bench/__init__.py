"""The benchmark of issues 5 and 9: `make bench` (or `python -m bench`).

On PostgreSQL and on SQLite in turn: seeds a fresh database with N leads and N/10 clients, starts
the server (one worker and two), the app floor (bench/floor.py), the raw floor (bench/raw.py) and
on PostgreSQL the PostGraphile peer (bench/peer.py), checks that they answer alike, drives them
in interleaved rounds and writes `bench/results.md`. See bench/README.md.
"""
