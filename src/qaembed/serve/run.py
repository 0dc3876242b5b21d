"""Bind a socket and run the app with uvicorn.

The socket is bound here, before uvicorn starts, so that a port in use or an address that is not
this machine's is a :class:`~qaembed.errors.ConfigError` naming it (not a traceback from inside
the server), and so that ``--port 0`` can print the port the system chose.
"""

from __future__ import annotations

import ipaddress
import socket

from qaembed.errors import ConfigError


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable only from this machine.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0"), is_loopback("::1")
    (True, True, False, True)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port; see ``sock.getsockname()``)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host!r} is not an address of this machine ({exc.strerror})") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        reason = "is in use; choose another with --port" if exc.errno == 98 else f"cannot be bound ({exc.strerror})"
        raise ConfigError(f"{host}:{port} {reason}") from exc
    sock.set_inheritable(True)
    return sock


def serve(app, sock: socket.socket, *, log_level: str = "warning", access_log: bool = False) -> None:
    """Run ``app`` on the bound ``sock`` until interrupted (Ctrl-C stops it gracefully)."""
    import uvicorn

    config = uvicorn.Config(app, log_level=log_level, access_log=access_log, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
