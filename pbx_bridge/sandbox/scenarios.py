"""sipp scenario XML for the caller (UAC) and the agent (UAS).

Generated per call so timings, numbers and the audio file are baked in; each
scenario logs ``HANGUP_BY=...`` through a sipp ``<log>`` action so the driver
knows which side ended the call.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

SDP = """v=0
o=pbxbridge 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=sendrecv
"""


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _cdata(text: str) -> str:
    """A SIP message: headers (empty lines dropped), a blank line, then the body if any."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    split = next(
        (i + 1 for i, line in enumerate(lines) if line.lower().startswith("content-length")),
        len(lines),
    )
    message = "\n".join(lines[:split]) + "\n\n"
    if lines[split:]:
        message += "\n".join(lines[split:]) + "\n"
    return "<![CDATA[\n" + message + "\n]]>"


def _log(message: str) -> str:
    return f'<nop><action><log message="{message}"/></action></nop>'


def _play(pcap: str) -> str:
    return f"<nop><action><exec play_pcap_audio={quoteattr(pcap)}/></action></nop>"


def caller(
    from_number: str,
    pcap: str,
    hangup_after_s: float | None,
    max_wait_s: float,
    answer_timeout_s: float,
    cancel_after_s: float | None = None,
) -> str:
    """UAC: INVITE the service number, play audio after answer, then BYE or await BYE."""
    headers = f"""
        From: <sip:{from_number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
        To: <sip:[service]@[remote_ip]:[remote_port]>
        Call-ID: [call_id]
    """
    invite = f"""
        INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        {headers}
        CSeq: 1 INVITE
        Contact: <sip:{from_number}@[local_ip]:[local_port]>
        Max-Forwards: 70
        User-Agent: pbx-bridge-sandbox-caller
        Content-Type: application/sdp
        Content-Length: [len]

        {SDP}
    """
    parts = [f'<send retrans="500">{_cdata(invite)}</send>']
    if cancel_after_s is not None:
        cancel = f"""
            CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
            [last_Via:]
            {headers}
            CSeq: 1 CANCEL
            Max-Forwards: 70
            Content-Length: 0
        """
        parts += [
            '<recv response="100" optional="true"/>',
            f'<recv response="180" timeout="{_ms(cancel_after_s)}" ontimeout="cancel"/>',
            f'<pause milliseconds="{_ms(cancel_after_s)}"/>',
            '<label id="cancel"/>',
            f"<send>{_cdata(cancel)}</send>",
            '<recv response="180" optional="true"/>',
            '<recv response="183" optional="true"/>',
            '<recv response="200"/>',
            '<recv response="487"/>',
            _ack(from_number, headers, via="[last_Via:]"),
            _log("HANGUP_BY=caller-cancel"),
        ]
        return _scenario("pbx-bridge caller (cancel)", parts)
    parts += [
        '<recv response="100" optional="true"/>',
        '<recv response="180" optional="true"/>',
        '<recv response="183" optional="true"/>',
        f'<recv response="200" rrs="true" timeout="{_ms(answer_timeout_s)}">'
        + (
            '<action><ereg regexp=".*" search_in="hdr" header="To:" assign_to="remote_to"/>'
            "</action>"
            if hangup_after_s is not None
            else ""
        )
        + "</recv>",
        _ack(from_number, headers),
        _log("ANSWERED"),
        _play(pcap),
    ]
    parts += _hangup_part(
        wait_s=hangup_after_s if hangup_after_s is not None else max_wait_s,
        we_hang_up=hangup_after_s is not None,
        bye=f"""
            BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
            Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
            {headers.replace("To: <sip:[service]@[remote_ip]:[remote_port]>", "To: [$remote_to]")}
            [routes]
            CSeq: 2 BYE
            Contact: <sip:{from_number}@[local_ip]:[local_port]>
            Max-Forwards: 70
            Content-Length: 0
        """,
        who="caller",
    )
    return _scenario("pbx-bridge caller", parts)


def _ack(
    from_number: str,
    headers: str,
    via: str = "Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]",
) -> str:
    ack = f"""
        ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
        {via}
        {headers.replace("To: <sip:[service]@[remote_ip]:[remote_port]>", "[last_To:]")}
        [routes]
        CSeq: 1 ACK
        Contact: <sip:{from_number}@[local_ip]:[local_port]>
        Max-Forwards: 70
        Content-Length: 0
    """
    return f"<send>{_cdata(ack)}</send>"


def _hangup_part(wait_s: float, we_hang_up: bool, bye: str, who: str) -> list[str]:
    """Await the far end's BYE; when ``we_hang_up``, send our own BYE once ``wait_s`` passed."""
    ok_for_bye = """
        SIP/2.0 200 OK
        [last_Via:]
        [last_From:]
        [last_To:]
        [last_Call-ID:]
        [last_CSeq:]
        Content-Length: 0
    """
    ontimeout = ' ontimeout="our_bye"' if we_hang_up else ""
    parts = [
        f'<recv request="BYE" timeout="{_ms(wait_s)}"{ontimeout}/>',
        f"<send>{_cdata(ok_for_bye)}</send>",
        _log("HANGUP_BY=remote"),
    ]
    if we_hang_up:
        parts += [
            '<nop next="done"/>',
            '<label id="our_bye"/>',
            f'<send retrans="500">{_cdata(bye)}</send>',
            '<recv response="200"/>',
            _log(f"HANGUP_BY={who}"),
            '<label id="done"/>',
        ]
    return parts


def agent(
    behaviour: str,
    pcap: str | None,
    ring_s: float,
    hangup_after_s: float | None,
    max_wait_s: float,
) -> str:
    """UAS for one call: answer (tone + DTMF), busy (486) or no-answer (ring until CANCEL)."""
    to_tag = "[last_To:];tag=[pid]SIPpTag01[call_number]"
    reply = """
        SIP/2.0 {code}
        [last_Via:]
        [last_From:]
        {to}
        [last_Call-ID:]
        {cseq}
        Contact: <sip:[service]@[local_ip]:[local_port]>
        {extra}
        Content-Length: {length}
        {body}
    """

    def response(code: str, body: str = "", cseq: str = "[last_CSeq:]", to: str = to_tag) -> str:
        extra = "Content-Type: application/sdp" if body else ""
        length = "[len]" if body else "0"
        text = reply.format(
            code=code,
            to=to,
            cseq=cseq,
            extra=extra,
            length=length,
            body=("\n" + body) if body else "",
        )
        return f"<send>{_cdata(text)}</send>"

    invite = (
        '<recv request="INVITE" crlf="true">'
        '<action><ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" '
        'assign_to="invite_cseq"/></action></recv>'
    )
    parts = [invite if behaviour == "no-answer" else '<recv request="INVITE" crlf="true"/>']
    if behaviour == "busy":
        parts += [response("486 Busy Here"), '<recv request="ACK"/>', _log("HANGUP_BY=agent-busy")]
    elif behaviour == "no-answer":
        parts += [
            response("180 Ringing"),
            f'<recv request="CANCEL" timeout="{_ms(max_wait_s)}"/>',
            response("200 OK", to="[last_To:]"),
            response("487 Request Terminated", cseq="CSeq: [$invite_cseq] INVITE"),
            '<recv request="ACK"/>',
            _log("HANGUP_BY=remote-cancel"),
        ]
    elif behaviour == "answer":
        if pcap is None:
            raise ValueError("an answering agent needs audio")
        bye = """
            BYE [next_url] SIP/2.0
            Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
            From: <sip:[service]@[local_ip]:[local_port]>;tag=[pid]SIPpTag01[call_number]
            [last_From:]
            [last_Call-ID:]
            [routes]
            CSeq: 2 BYE
            Max-Forwards: 70
            Content-Length: 0
        """
        # The far end's From becomes our To; sipp's [last_From:] prints "From:", so fix it.
        bye = bye.replace("[last_From:]", "To: [$remote_from]")
        # sipp refuses variables that are set but never used.
        parts[0] = (
            '<recv request="INVITE" crlf="true" rrs="true"><action>'
            '<ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>'
            "</action></recv>"
            if hangup_after_s is not None
            else '<recv request="INVITE" crlf="true" rrs="true"/>'
        )
        parts += [response("180 Ringing")]
        if ring_s > 0:
            parts.append(f'<pause milliseconds="{_ms(ring_s)}"/>')
        parts += [
            response("200 OK", body=SDP).replace("<send>", '<send retrans="500">'),
            '<recv request="ACK" crlf="true"/>',
            _log("ANSWERED"),
            _play(pcap),
        ]
        parts += _hangup_part(
            wait_s=hangup_after_s if hangup_after_s is not None else max_wait_s,
            we_hang_up=hangup_after_s is not None,
            bye=bye,
            who="agent",
        )
    else:
        raise ValueError(f"unknown agent behaviour {behaviour!r}")
    return _scenario(f"pbx-bridge agent ({behaviour})", parts)


def _scenario(name: str, parts: list[str]) -> str:
    body = "\n".join(parts)
    header = '<?xml version="1.0" encoding="ISO-8859-1" ?>'
    return f'{header}\n<scenario name="{name}">\n{body}\n</scenario>\n'
