"""`python -m bench` (what `make bench` runs): see bench/README.md."""

from bench.harness import main

if __name__ == "__main__":
    raise SystemExit(main())
