"""Benchmarks and the reliability suite, run against the Zoom emulator."""
