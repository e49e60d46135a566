"""Free loopback ports for sandbox instances and sipp."""

from __future__ import annotations

import random
import socket
from collections.abc import Sequence


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port that is free for both UDP and TCP on 127.0.0.1 right now."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as first:
            first.bind(("127.0.0.1", 0))
            port: int = first.getsockname()[1]
            other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
            try:
                with socket.socket(socket.AF_INET, other) as second:
                    second.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free loopback port found")


def free_ports(count: int) -> list[int]:
    """Distinct free ports (held open together so none is handed out twice)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
            port = sock.getsockname()[1]
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                    tcp.bind(("127.0.0.1", port))
            except OSError:
                continue
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports


def free_port_range(
    size: int,
    low: int = 21000,
    high: int = 27990,
    randomize: bool = False,
    exclude: Sequence[tuple[int, int]] = (),
) -> tuple[int, int]:
    """A ``size``-aligned block of UDP ports free now, avoiding ``exclude`` ranges.

    ``randomize`` starts the search at a random block so parallel users seldom
    pick the same one.
    """
    blocks = list(range(low - low % size, high - size + 1, size))
    if randomize:
        offset = random.randrange(len(blocks))
        blocks = blocks[offset:] + blocks[:offset]
    for start in blocks:
        end = start + size - 1
        if any(start <= b and a <= end for a, b in exclude):
            continue
        if all(_udp_free(port) for port in range(start, end + 1)):
            return start, end
    raise OSError(f"no free block of {size} UDP ports between {low} and {high}")


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
