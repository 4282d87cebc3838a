"""pipelines: the orchestration room — the `tidu` CLI, reading the drop, the DuckDB warehouse,
the run wiring and its manifest, and the synthetic city. It knows every room; none imports it."""
