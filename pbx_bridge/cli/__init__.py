"""The ``pbx-bridge`` command: one file per command group, wired in ``main``."""
