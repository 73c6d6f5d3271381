"""The benchmark of issue 5: `make bench` (or `python -m bench`).

Seeds a fresh database with N leads and N/10 clients, starts the server (one worker) and a
plain-Starlette floor that runs the same SQL, drives both with the same load, and writes
`bench/results.md`. See bench/README.md.
"""
