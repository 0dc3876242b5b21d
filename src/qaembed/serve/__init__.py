"""Serve indexes over HTTP: a JSON API (FastAPI) and a web page to try and compare models.

* :func:`create_app` builds the ASGI app over loaded :class:`~qaembed.index.SearchIndex` objects;
* :func:`serve` binds a socket (loopback by default) and runs it with uvicorn;
* :class:`ServerLimits` caps body size, query count and length, ``k`` and the queue.

``qaembed serve`` sits on these; see ``docs/serve.md``.
"""

from qaembed.serve.app import create_app
from qaembed.serve.limits import ServerLimits
from qaembed.serve.run import bind, serve

__all__ = ["ServerLimits", "bind", "create_app", "serve"]
