"""`pbx-bridge check`: everything an installation needs, checked in one command.

Each area has its own module; every check returns findings (ok, warning, problem, or
skipped because what it needs is already broken) whose one-line message says what to fix.
The decisions (thresholds, comparisons) are pure functions, tested without I/O.
"""
