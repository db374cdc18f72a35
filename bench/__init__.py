"""Benchmarks: hookline against the usual Python way and a bare ceiling (see README.md)."""
