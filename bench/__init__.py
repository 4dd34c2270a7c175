"""Benchmarks for `make bench`. Figures are printed as JSON; nothing here is asserted."""
