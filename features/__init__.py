"""features: the point-in-time panel — one row per (enterprise, quarter) with every feature of
docs/architecture.md, computed from the typed warehouse tables using only rows dated on or
before the quarter's end. `features.panel.build_panel` builds it; `features.catalog` describes
each column (label, unit, definition, model use). Pure functions, no I/O.
"""
