"""Fan-out (issue 18): many tasks, each in its own sandbox, under one daily budget.

plan.py turns `--tasks/--map-over-*` into tasks; leases.py shares the remaining budget
between sandboxes; runner.py runs them (parallel, fail-fast, Ctrl-C); outputs.py keeps each
task's output and the summary; progress.py shows it; heavymap.py is `run_heavy_map`.
"""
