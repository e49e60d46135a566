"""How long work tells whoever runs it how far it has got, without knowing who listens.

A purge of a year's backlog or an audit of every copy can take minutes; the admin at a
terminal wants a bar, cron wants a line now and then, and the service wants nothing. The
work only says how much there is (``start``, when it can count it cheaply) and how much is
done (``advance``); the CLI decides how to show it. ``SILENT`` is the default everywhere,
so callers that do not care pass nothing.
"""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, total: int | None) -> None:
        """The work begins: ``total`` items (None: not known in advance)."""

    def advance(self, n: int = 1) -> None:
        """``n`` more items are done."""


class _Silent:
    def start(self, total: int | None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass


SILENT: Progress = _Silent()
