"""`data/` holds whole workspaces the tests copy (with their own test suites): not ours to
collect."""

collect_ignore = ["data"]
