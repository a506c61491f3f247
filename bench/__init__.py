"""Benchmarks of adk_lite side by side with ADK's session services and the SQLite floor.

Run ``python -m bench`` (``--quick`` for a small run, ``--json PATH`` for every
figure); see the README's "Performance" section. Modules: :mod:`bench.workload`
(the events), :mod:`bench.floor` (the stdlib-sqlite3 floor and the big-file
builder), :mod:`bench.drivers` (one interface per service), :mod:`bench.suite`
(the per-service figures), :mod:`bench.concurrency` (several processes on one
file), :mod:`bench.report` (table, ratios, targets), :mod:`bench.run` (the command),
:mod:`bench.postgres` (``--backend postgres``: the same figures on a PostgreSQL server),
:mod:`bench.turn` (a real ADK Runner turn on a long session, adapter beside InMemory),
:mod:`bench.round3` (the round-3 targets; ``python -m bench.round3`` measures only them).
"""
