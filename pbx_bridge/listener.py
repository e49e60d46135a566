"""Binding an HTTP listener ourselves, before uvicorn serves on it: a port already taken
or an address this host does not have stops start-up with a message naming the config
key (uvicorn alone would log and exit the process)."""

from __future__ import annotations

import asyncio
import socket

from pbx_bridge.config import ConfigError, listen_address


async def bind_listener(listen: str, key: str) -> socket.socket:
    """A bound, non-blocking socket for ``listen`` (host:port), or ConfigError naming ``key``."""
    host, port = listen_address(listen)
    loop = asyncio.get_running_loop()
    try:
        family, kind, proto, _, address = (
            await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot listen on {listen}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"{key}: cannot listen on {listen}: {exc}") from exc
    sock.setblocking(False)
    return sock
