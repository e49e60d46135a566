"""The options ``route set`` and ``outbound-route set`` share, spelled once."""

from __future__ import annotations

from typing import Annotated

import typer

from pbx_bridge.config import LegalBasis, TimeoutRule

LegalBasisOption = Annotated[
    LegalBasis | None,
    typer.Option("--legal-basis", help="Ground the recording relies on (KVKK art. 5)."),
]
RetentionOption = Annotated[
    str | None, typer.Option("--retention", help="Retention class of the recordings.")
]
TimeoutMeansOption = Annotated[
    TimeoutRule | None,
    typer.Option("--timeout-means", help="What silence after the question means."),
]
PromptTimeoutOption = Annotated[
    int | None,
    typer.Option("--prompt-timeout", metavar="SECONDS", help="Seconds to wait for a key."),
]
