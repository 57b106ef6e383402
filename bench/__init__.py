"""Benchmarks and the fleet generator they share; run them all with ``make bench``."""
