"""QR codes drawn on the server as inline SVG (segno: pure Python, no image library), so
an authenticator app can scan the TOTP enrolment URI without the page loading a script
or an image from anywhere (the CSP allows neither)."""

from __future__ import annotations

import segno
from markupsafe import Markup


def qr_svg(data: str, title: str) -> Markup:
    """``data`` as an inline ``<svg>`` with ``title`` for screen readers. Error
    correction M: a screen's glare or a phone held at an angle still reads."""
    code = segno.make(data, error="m", micro=False)
    svg = code.svg_inline(scale=5, border=4, dark="#000", light="#fff",
                          title=title, svgclass="qr-code")
    return Markup(svg)  # segno's own markup; it escapes the title itself
