"""Data files shipped with the package (prompt sets used by the demo and the benchmarks)."""
