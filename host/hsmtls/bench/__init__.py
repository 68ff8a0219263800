"""Benchmarks, measured, not asserted: server.py (`hsmtls bench server` and `bench
premaster`), nginx.py (the nginx rows of `bench server`), lucky13.py (`hsmtls bench
lucky13`), loadgen.py (the load generator `bench server` runs as a separate process:
`python -m hsmtls.bench.loadgen`)."""
