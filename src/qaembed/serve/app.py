"""The HTTP API and web page over one or more loaded indexes: :func:`create_app`.

Routes (OpenAPI docs at ``/docs``, schema at ``/openapi.json``):

* ``POST /search`` ``{"query": "..."}`` or ``{"queries": [...]}``, optional ``"k"`` and ``"index"``
  → the same JSON as ``qaembed search --json``;
* ``POST /embed`` ``{"texts": [...], "type": "query"|"document", "index": ...}`` → unit-norm embeddings
  with the index's model (``query`` applies the model's query prompt, ``document`` encodes as the
  index was built);
* ``GET /health`` → status, each index's summary and queue; ``GET /indexes`` → the index names;
* ``GET /`` → the web page (plain HTML/JS in ``static/``); ``GET /maps`` and ``GET /maps/{name}``
  → the embedding-map PNGs of ``--maps DIR``, when given.

Every error is JSON ``{"error": message, "status": code}`` (plus ``"field"`` when one field is at
fault): 400 malformed JSON, 404 unknown index or route, 405 method, 413 body too large, 415 not
JSON, 422 a field out of range or text that is not valid UTF-8 (a lone surrogate from a ``"\\ud800"``
escape: refused as the request is parsed, so it never joins a batch), 503 queue full (with
``Retry-After``). A failing request never takes the server down.
"""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from qaembed.errors import QaembedError
from qaembed.index import Hit, SearchIndex
from qaembed.records import utf8_problem
from qaembed.serve.batcher import Batcher, Busy
from qaembed.serve.limits import ServerLimits

STATIC = resources.files("qaembed.serve") / "static"
PAGE_FILES = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
SECURITY_HEADERS = {
    # the page loads only its own script, style and images; nothing from elsewhere, no inline script
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


DEFAULT_K = 10  # answers per question when a search gives no k (the server's max_k if lower)


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, field: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers or {}


class SearchRequest(BaseModel):
    """One question (``query``) or several (``queries``); ``k`` answers each; ``index`` by name."""

    model_config = ConfigDict(extra="forbid")
    query: StrictStr | None = Field(None, description="One question.", examples=["How long does opened beer keep?"])
    queries: list[StrictStr] | None = Field(None, description="Several questions (instead of query).")
    k: StrictInt | None = Field(None, description="Answers per question (default 10, or the server's max_k if lower; "
                                                  "clamped to the index size).")
    index: StrictStr | None = Field(None, description="Index name (default: the first one served).")


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr] = Field(..., description="Texts to embed.")
    type: Literal["query", "document"] = Field("query", description="Encode as queries or as documents.")
    index: StrictStr | None = Field(None, description="Whose model encodes (default: the first index).")


class ResultModel(BaseModel):
    query: str
    hits: list[Hit]  # the library's dataclass: one definition for the search results and the API schema


class SearchResponse(BaseModel):
    index: str
    model: str
    k: int = Field(description="Answers per question actually used (k clamped to the index size).")
    results: list[ResultModel]


class EmbedResponse(BaseModel):
    index: str
    model: str
    type: Literal["query", "document"]
    dimension: int
    normalized: bool
    embeddings: list[list[float]]


def _error(status: int, message: str, *, field: str | None = None, headers: dict | None = None) -> JSONResponse:
    body = {"error": message, "status": status}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers={**SECURITY_HEADERS, **(headers or {})})


def _validation_message(exc: RequestValidationError) -> tuple[int, str, str | None]:
    """(status, message, field) of the first problem: 400 for JSON that does not parse, else 422."""
    first = exc.errors()[0]
    parts = list(first.get("loc", ()))
    if parts[:1] == ["body"]:  # FastAPI's prefix; a field may itself be named 'body' (or '')
        parts = parts[1:]
    kind = first.get("type", "")
    if kind == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", first.get("msg", ""))
        where = f" at character {parts[0]}" if parts and isinstance(parts[0], int) else ""
        return 400, f"malformed JSON in the request body: {detail}{where}", None
    field = ".".join(str(part) for part in parts) if parts else None
    if kind == "missing" and field is None:
        return 400, "the request body is empty; send a JSON object", None
    if kind in ("model_attributes_type", "dict_type") and field is None:
        return 400, "the request body must be a JSON object", None
    if kind == "string_unicode" and field is None:  # a key such as "\\ud800": no field to name
        return 422, "a field name is not valid Unicode (a lone surrogate escape such as \\ud800)", None
    if kind == "extra_forbidden":
        return 422, f"unknown field {field!r}", field
    return 422, f"field {field!r}: {first.get('msg', 'invalid')}" if field is not None else first.get("msg", "invalid"), field


def _body_problem(cause: BaseException | None) -> str | None:
    """What FastAPI's generic "error parsing the body" was, named for the client (None: not a body problem)."""
    if isinstance(cause, UnicodeDecodeError):
        return f"the request body is not UTF-8 ({cause.reason} at byte {cause.start}); send JSON encoded as UTF-8"
    if isinstance(cause, RecursionError):
        return "the request body is JSON nested too deeply to read; send a flat JSON object"
    if isinstance(cause, ValueError) and "digits" in str(cause):  # Python's int-string conversion limit
        limit = sys.get_int_max_str_digits()
        return f"the request body has a number too long to read (over {limit} digits); k must be a small integer"
    return None


def create_app(indexes: dict[str, SearchIndex], limits: ServerLimits | None = None, *, maps: Path | None = None) -> FastAPI:
    """A FastAPI app serving ``indexes`` (name → loaded index; the first is the default)."""
    if not indexes:
        raise ValueError("create_app needs at least one index")
    limits = limits or ServerLimits()
    names = list(indexes)
    batchers = {name: Batcher(index, max_pending=limits.max_pending, max_batch=limits.max_batch) for name, index in indexes.items()}
    map_files = _map_files(maps)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        for batcher in batchers.values():
            batcher.start()
        yield
        for batcher in batchers.values():
            await batcher.stop()

    app = FastAPI(
        title="qaembed search", version="1", lifespan=lifespan,
        description="Search Q&A indexes built with `qaembed index build`; see docs/serve.md.",
    )
    app.state.limits, app.state.batchers = limits, batchers
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError):
        return _error(exc.status, exc.message, field=exc.field, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError):
        status, message, field = _validation_message(exc)
        return _error(status, message, field=field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 400:  # FastAPI's "There was an error parsing the body" hides the cause
            message = _body_problem(exc.__cause__) or message
        return _error(exc.status_code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):  # the server stays up; the client gets JSON
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        if request.method == "POST" and request.url.path in ("/search", "/embed"):
            content_type = request.headers.get("content-type", "")
            if content_type.split(";")[0].strip().lower() != "application/json":
                return _error(415, f"send the request body as JSON (Content-Type: application/json), not {content_type or 'no type'!r}")
        response = await call_next(request)
        if request.url.path in ("/docs", "/redoc"):
            return response  # FastAPI's docs pages load Swagger UI / ReDoc from a CDN; the schema is /openapi.json
        for header, value in SECURITY_HEADERS.items():
            response.headers.setdefault(header, value)
        return response

    def pick(name: str | None) -> tuple[str, Batcher]:
        if name is None:
            return names[0], batchers[names[0]]
        if name not in batchers:
            raise ApiError(404, f"no index named {name!r}; this server has: {', '.join(names)}", field="index")
        return name, batchers[name]

    def check_texts(texts: list[str], field: str, what: str) -> None:
        if not texts:
            raise ApiError(422, f"field {field!r}: give at least one {what}", field=field)
        if len(texts) > limits.max_queries:
            raise ApiError(422, f"field {field!r}: at most {limits.max_queries} {what}s per request, got {len(texts)}", field=field)
        for number, text in enumerate(texts, start=1):
            where = field if field in ("query",) else f"{field}[{number - 1}]"
            if not text.strip():
                raise ApiError(422, f"field {where!r}: the {what} is empty", field=field)
            problem = utf8_problem(text)  # a JSON "\ud800" escape: refused here, before it could join a batch
            if problem:
                raise ApiError(422, f"field {where!r}: {problem}", field=field)
            if len(text) > limits.max_query_chars:
                raise ApiError(422, f"field {where!r}: {len(text):,} characters; at most {limits.max_query_chars:,}", field=field)

    async def run(batcher: Batcher, kind, texts, k=0):
        try:
            return await batcher.submit(kind, texts, k)
        except Busy as exc:
            raise ApiError(503, f"busy: {exc}; retry shortly", headers={"Retry-After": "1"}) from None
        except QaembedError as exc:
            raise ApiError(422, str(exc)) from None

    @app.post("/search", summary="Ranked answers for one or more questions", response_model=SearchResponse)
    async def search(request: SearchRequest) -> JSONResponse:
        if (request.query is None) == (request.queries is None):
            raise ApiError(422, "give either 'query' (one question) or 'queries' (a list), not both or neither")
        field = "query" if request.query is not None else "queries"
        texts = [request.query] if request.query is not None else list(request.queries)
        check_texts(texts, field, "question")
        wanted = min(DEFAULT_K, limits.max_k) if request.k is None else request.k
        if wanted < 1 or wanted > limits.max_k:
            raise ApiError(422, f"field 'k': must be between 1 and {limits.max_k}, got {wanted}", field="k")
        name, batcher = pick(request.index)
        k = min(wanted, len(batcher.index))
        results = await run(batcher, "search", texts, k)
        # a JSONResponse is sent as is: FastAPI's jsonable_encoder walk of every hit cost more than the search
        return JSONResponse({"index": name, "model": batcher.index.manifest.model.reference, "k": k,
                             "results": [result.to_dict() for result in results]})

    @app.post("/embed", summary="Embeddings of texts with an index's model", response_model=EmbedResponse)
    async def embed(request: EmbedRequest) -> JSONResponse:
        check_texts(list(request.texts), "texts", "text")
        name, batcher = pick(request.index)
        embeddings = await run(batcher, request.type, list(request.texts))
        return JSONResponse({"index": name, "model": batcher.index.manifest.model.reference, "type": request.type,
                             "dimension": int(embeddings.shape[1]), "normalized": True, "embeddings": embeddings.tolist()})

    @app.get("/health", summary="Status and the indexes served")
    async def health() -> dict:
        return {
            "status": "ok",
            "indexes": {name: {**batcher.index.info(), "pending": batcher.pending, "batches": batcher.batches,
                               "requests": batcher.jobs} for name, batcher in batchers.items()},
            "limits": limits.model_dump(),
        }

    @app.get("/indexes", summary="Names of the indexes served (the first is the default)")
    async def list_indexes() -> dict:
        return {"indexes": [{"name": name, "documents": len(batchers[name].index), "model": batchers[name].index.manifest.model.reference}
                            for name in names], "default": names[0], "maps": sorted(map_files),
                "max_k": limits.max_k}

    @app.get("/maps", summary="Embedding maps available (PNG names)")
    async def list_maps() -> dict:
        return {"maps": sorted(map_files)}

    @app.get("/maps/{name}", include_in_schema=False)
    async def get_map(name: str):
        if name not in map_files:  # only files listed at start-up: no path from the request reaches the disk
            raise ApiError(404, f"no map named {name!r}")
        return FileResponse(map_files[name], media_type="image/png")

    @app.get("/", include_in_schema=False)
    async def page():
        return HTMLResponse(STATIC.joinpath("index.html").read_text(encoding="utf-8"))

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str):
        if name not in PAGE_FILES:
            raise ApiError(404, f"no file {name!r}")
        return Response(STATIC.joinpath(name).read_text(encoding="utf-8"), media_type=PAGE_FILES[name])

    return app


def _map_files(folder: Path | None) -> dict[str, Path]:
    """The PNG files directly in ``folder`` (name → resolved path), or none.

    A link that leads out of the folder (``x.png -> /etc/passwd``) is left out: a request reads only files inside
    the folder given. The paths are resolved here, so a link planted after start-up changes nothing.
    """
    if folder is None:
        return {}
    root = Path(folder).resolve()
    found = {}
    for path in sorted(Path(folder).glob("*.png")):
        resolved = path.resolve()
        if resolved.is_file() and resolved.parent == root:
            found[path.name] = resolved
    return found


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` gets 413 before it is read into memory.

    Checks ``Content-Length`` first, then counts the bytes of a chunked body as they arrive.
    """

    def __init__(self, app, *, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        too_large = _error(413, f"the request body is larger than {self.max_bytes:,} bytes")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return await _error(400, "invalid Content-Length header")(scope, receive, send)
            if declared > self.max_bytes:
                return await too_large(scope, receive, send)
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:  # a chunked body that grew too large: the route's body read fails
                    raise StarletteHTTPException(413, detail=f"the request body is larger than {self.max_bytes:,} bytes")
            return message

        await self.app(scope, limited_receive, send)
