"""The HTTP API (``qaembed.serve.create_app``) over indexes built with the tiny model: results equal the
library's, every bad request gets a JSON 4xx naming the problem, and the server keeps serving after each."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from index_helpers import running_server

from qaembed.index import load_index
from qaembed.serve import ServerLimits, create_app


@pytest.fixture(scope="module")
def index(built_index, tiny_model_dir):
    return load_index(built_index, str(tiny_model_dir))


@pytest.fixture(scope="module")
def client(index):
    limits = ServerLimits(max_k=20, max_queries=4, max_query_chars=200, max_body_bytes=4096)
    with TestClient(create_app({"main": index}, limits)) as test_client:
        yield test_client


def post(client, path, body, **kwargs):
    return client.post(path, content=body if isinstance(body, bytes) else json.dumps(body),
                       headers={"Content-Type": "application/json"}, **kwargs)


def test_search_returns_what_the_library_returns(client, index):
    response = post(client, "/search", {"query": "How does hops affect beer 3?", "k": 5})
    assert response.status_code == 200
    payload = response.json()
    [expected] = index.search(["How does hops affect beer 3?"], k=5)
    assert payload["index"] == "main" and payload["k"] == 5
    assert payload["model"] == index.manifest.model.reference
    [result] = payload["results"]
    assert result["query"] == "How does hops affect beer 3?"
    assert [hit["id"] for hit in result["hits"]] == [hit.id for hit in expected.hits]
    assert np.allclose([hit["score"] for hit in result["hits"]], [hit.score for hit in expected.hits], atol=1e-6)
    first = result["hits"][0]
    assert {"rank", "score", "votes", "accepted", "question_title", "url", "author", "author_url", "license"} <= set(first)
    assert first["license"] == "CC BY-SA 4.0" and first["author"].startswith("brewer")


def test_many_queries_in_one_request_match_one_at_a_time(client, index):
    queries = ["yeast and malt", "lager foam", "cork in the bottle"]
    batched = post(client, "/search", {"queries": queries, "k": 3}).json()["results"]
    for query, result in zip(queries, batched):
        alone = post(client, "/search", {"query": query, "k": 3}).json()["results"][0]
        assert result["query"] == query
        assert [hit["id"] for hit in result["hits"]] == [hit["id"] for hit in alone["hits"]]
        assert np.allclose([h["score"] for h in result["hits"]], [h["score"] for h in alone["hits"]], atol=1e-5)


def test_a_search_without_k_gets_ten_or_the_servers_max_k(index):
    for max_k, expected in [(100, 10), (3, 3)]:
        with TestClient(create_app({"main": index}, ServerLimits(max_k=max_k))) as test_client:
            response = post(test_client, "/search", {"query": "stout"})
        assert response.status_code == 200, response.text
        assert response.json()["k"] == expected and len(response.json()["results"][0]["hits"]) == expected


@pytest.mark.parametrize("body, words", [
    (b"[" * 1500 + b"]" * 1500, "nested too deeply"),
    (b'{"query": "x", "k": ' + b"9" * 5000 + b"}", "a number too long to read (over 4300 digits)"),
], ids=["deep", "long-number"])
def test_bodies_python_cannot_parse_are_named(index, body, words):
    with TestClient(create_app({"main": index}, ServerLimits(max_body_bytes=100_000))) as test_client:
        response = test_client.post("/search", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and words in response.json()["error"], response.text
        assert post(test_client, "/search", {"query": "malt", "k": 2}).status_code == 200


def test_k_above_the_index_size_is_clamped_and_said(index):
    with TestClient(create_app({"main": index}, ServerLimits(max_k=1000))) as test_client:
        payload = post(test_client, "/search", {"query": "stout", "k": 500}).json()
    assert payload["k"] == len(index) == 60
    assert len(payload["results"][0]["hits"]) == 60


def test_embed_queries_and_documents_with_the_index_model(client, index):
    texts = ["How long does beer keep?", "Bottles keep for a year."]
    queries = post(client, "/embed", {"texts": texts}).json()
    assert queries["type"] == "query" and queries["dimension"] == index.manifest.dimension and queries["normalized"]
    assert np.allclose(queries["embeddings"], index.embed(texts), atol=1e-6)
    documents = post(client, "/embed", {"texts": texts, "type": "document"}).json()
    assert np.allclose(documents["embeddings"], index.embed_documents(texts), atol=1e-6)
    assert np.allclose(np.linalg.norm(documents["embeddings"], axis=1), 1.0, atol=1e-5)


def test_health_and_indexes(client, index):
    health = client.get("/health").json()
    assert health["status"] == "ok"
    assert health["indexes"]["main"]["documents"] == 60
    assert health["indexes"]["main"]["weights_hash"] == index.manifest.model.weights_hash
    assert health["limits"]["max_k"] == 20
    listing = client.get("/indexes").json()
    assert listing["default"] == "main" and listing["indexes"][0]["documents"] == 60 and listing["maps"] == []


def test_openapi_schema_lists_the_routes(client):
    schema = client.get("/openapi.json").json()
    assert {"/search", "/embed", "/health", "/indexes"} <= set(schema["paths"])
    assert "k" in schema["components"]["schemas"]["SearchRequest"]["properties"]


BAD_REQUESTS = [
    # (body, content type, status, words the error must contain, field)
    (b'{"query": "x",', "application/json", 400, "malformed JSON", None),
    (b'{"query": "x", "k": }', "application/json", 400, "malformed JSON in the request body: Expecting value at "
     "character 20", None),
    (b'{"query": "caf\xe9"}', "application/json", 400, "the request body is not UTF-8 (invalid continuation byte at "
     "byte 14)", None),
    (b"", "application/json", 400, "empty", None),
    (b'["a question"]', "application/json", 400, "JSON object", None),
    (b'{"query": "x"}', "text/plain", 415, "Content-Type: application/json", None),
    (b'{"query": "x"}', None, 415, "no type", None),
    (b"{}", "application/json", 422, "either 'query'", None),
    (b'{"query": "x", "queries": ["y"]}', "application/json", 422, "not both", None),
    (b'{"query": "   "}', "application/json", 422, "empty", "query"),
    (b'{"queries": []}', "application/json", 422, "at least one", "queries"),
    (b'{"queries": ["a", ""]}', "application/json", 422, "queries[1]", "queries"),
    (b'{"queries": ["a", 3]}', "application/json", 422, "valid string", "queries.1"),
    (b'{"query": "\\ud800"}', "application/json", 422, "field 'query': not valid UTF-8 text: character 1 is a lone "
     "surrogate (U+D800)", "query"),
    (b'{"queries": ["a", "caf\\udce9"]}', "application/json", 422, "field 'queries[1]': not valid UTF-8 text: "
     "character 4", "queries"),
    (b'{"queries": ["a", "b", "c", "d", "e"]}', "application/json", 422, "at most 4", "queries"),
    (json.dumps({"query": "x" * 201}).encode(), "application/json", 422, "at most 200", "query"),
    (b'{"query": "x", "k": 0}', "application/json", 422, "between 1 and 20", "k"),
    (b'{"query": "x", "k": -3}', "application/json", 422, "between 1 and 20", "k"),
    (b'{"query": "x", "k": 21}', "application/json", 422, "between 1 and 20", "k"),
    (b'{"query": "x", "k": 1000000000000}', "application/json", 422, "between 1 and 20", "k"),
    (b'{"query": "x", "k": "5"}', "application/json", 422, "valid integer", "k"),
    (b'{"query": "x", "k": true}', "application/json", 422, "valid integer", "k"),
    (b'{"query": "x", "k": 2.5}', "application/json", 422, "valid integer", "k"),
    (b'{"query": "x", "top": 3}', "application/json", 422, "unknown field 'top'", "top"),
    (b'{"query": "x", "body": 3}', "application/json", 422, "unknown field 'body'", "body"),  # not FastAPI's prefix
    (b'{"query": "x", "": 3}', "application/json", 422, "unknown field ''", ""),
    (b'{"query": "x", "\\ud800": 3}', "application/json", 422, "a field name is not valid Unicode", None),
    (b'{"query": "x", "index": "other"}', "application/json", 404, "no index named 'other'", "index"),
    (json.dumps({"query": "x" * 5000}).encode(), "application/json", 413, "larger than 4,096 bytes", None),
]


@pytest.mark.parametrize("body, content_type, status, words, field", BAD_REQUESTS,
                         ids=[f"{case[2]}-{i}" for i, case in enumerate(BAD_REQUESTS)])
def test_bad_search_requests_get_json_errors_and_the_server_stays_up(client, body, content_type, status, words, field):
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post("/search", content=body, headers=headers)
    assert response.status_code == status, response.text
    payload = response.json()
    assert payload["status"] == status and words in payload["error"], payload
    assert payload.get("field") == field
    assert post(client, "/search", {"query": "malt", "k": 2}).status_code == 200


@pytest.mark.parametrize("body, status, words", [
    ({"texts": []}, 422, "at least one"),
    ({"texts": "one string"}, 422, "valid list"),
    ({"texts": ["a"], "type": "passage"}, 422, "'query' or 'document'"),
    ({"texts": ["a", " "]}, 422, "texts[1]"),
    ({"texts": ["\ud800 a"]}, 422, "field 'texts[0]': not valid UTF-8 text"),
    ({"texts": ["a", "b\udfff"], "type": "document"}, 422, "field 'texts[1]': not valid UTF-8 text"),
    ({"texts": ["a"], "index": "nope"}, 404, "no index named"),
])
def test_bad_embed_requests(client, body, status, words):
    response = post(client, "/embed", body)
    assert response.status_code == status and words in response.json()["error"], response.text


def test_a_chunked_body_over_the_limit_is_refused(client):
    def chunks():
        yield b'{"query": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = client.post("/search", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and "larger than" in response.json()["error"]


def test_unknown_routes_and_methods_are_json(client):
    assert client.get("/nowhere").json() == {"error": "Not Found", "status": 404}
    assert client.get("/search").status_code == 405 and client.get("/search").json()["status"] == 405
    assert client.get("/maps/../../etc/passwd").status_code == 404
    assert client.get("/static/index.html").status_code == 404  # only the page's own files, by name


def test_page_and_its_files_are_served_with_a_strict_policy(client):
    page = client.get("/")
    assert page.status_code == 200 and 'id="query"' in page.text and "/static/app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    script = client.get("/static/app.js")
    assert script.headers["content-type"].startswith("text/javascript") and "textContent" in script.text
    assert ".innerHTML" not in script.text  # the page never parses index text as HTML


def test_maps_folder_is_listed_and_served(index, tmp_path):
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
    (tmp_path / "base-vs-tuned.png").write_bytes(png)
    (tmp_path / "notes.txt").write_text("not a map")
    with TestClient(create_app({"main": index}, maps=tmp_path)) as test_client:
        assert test_client.get("/maps").json() == {"maps": ["base-vs-tuned.png"]}
        assert test_client.get("/indexes").json()["maps"] == ["base-vs-tuned.png"]
        response = test_client.get("/maps/base-vs-tuned.png")
        assert response.status_code == 200 and response.content == png and response.headers["content-type"] == "image/png"
        assert test_client.get("/maps/notes.txt").status_code == 404


def test_two_indexes_side_by_side(index, tiny_model_dir, other_model_dir, qa_data, tmp_path):
    from qaembed.index import build_index

    build_index(str(other_model_dir), qa_data, tmp_path / "other", progress=False)
    other = load_index(tmp_path / "other")
    with TestClient(create_app({"base": index, "tuned": other})) as test_client:
        assert [item["name"] for item in test_client.get("/indexes").json()["indexes"]] == ["base", "tuned"]
        base = post(test_client, "/search", {"query": "foam", "k": 60}).json()
        tuned = post(test_client, "/search", {"query": "foam", "k": 60, "index": "tuned"}).json()
        default = post(test_client, "/search", {"query": "foam", "k": 60}).json()
    assert base["index"] == default["index"] == "base" and tuned["index"] == "tuned"
    assert tuned["model"] == str(other_model_dir.resolve()) or tuned["model"].endswith(other_model_dir.name)
    assert index.manifest.model.weights_hash != other.manifest.model.weights_hash
    for payload, own in ((base, index), (tuned, other)):  # each index answers with its own model
        [expected] = own.search(["foam"], k=60)
        assert [hit["id"] for hit in payload["results"][0]["hits"]] == [hit.id for hit in expected.hits]
        assert np.allclose([hit["score"] for hit in payload["results"][0]["hits"]], [hit.score for hit in expected.hits], atol=1e-6)


class _SlowIndex:
    """Wraps a loaded index; ``embed`` waits for ``release`` (to hold requests in the queue)."""

    def __init__(self, index):
        self._index, self.release, self.entered = index, threading.Event(), threading.Event()

    def __getattr__(self, name):
        return getattr(self._index, name)

    def __len__(self):
        return len(self._index)

    def embed(self, texts):
        self.entered.set()
        assert self.release.wait(300)
        return self._index.embed(texts)


def _one_encoding_two_waiting(http, slow) -> tuple[dict, list[threading.Thread]]:
    """Three searches in threads: the first held in the encoder, the other two queued behind it (waited for)."""
    outcomes = {}

    def search(name):
        outcomes[name] = http.post("/search", json={"query": f"beer {name}", "k": 2})

    threads = [threading.Thread(target=search, args=(f"q{i}",)) for i in range(3)]
    threads[0].start()
    assert slow.entered.wait(120)  # the first request is encoding, off the event loop
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 120  # a wait for a state, not a timing: generous for a loaded machine
    while http.get("/health").json()["indexes"]["main"]["pending"] < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    return outcomes, threads


def test_a_slow_search_does_not_block_other_requests_and_a_full_queue_gets_503(index):
    slow = _SlowIndex(index)
    app = create_app({"main": slow}, ServerLimits(max_pending=2))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=120) as http:
        outcomes, threads = _one_encoding_two_waiting(http, slow)
        # answered while the encoder is held (it waits on an event, so a blocked event loop could not answer at all)
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["indexes"]["main"]["pending"] == 2
        refused = http.post("/search", json={"query": "one more", "k": 2})
        assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
        assert "already waiting" in refused.json()["error"]
        slow.release.set()
        for thread in threads:
            thread.join(120)
        assert all(outcomes[name].status_code == 200 for name in outcomes), outcomes
        assert http.get("/health").json()["indexes"]["main"]["batches"] == 2  # q1 and q2 were encoded together


def test_the_documented_response_schema_has_every_hit_field(client):
    from dataclasses import fields

    from qaembed.index import Hit

    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert list(schema["Hit"]["properties"]) == [field.name for field in fields(Hit)]
    assert schema["SearchResponse"]["required"] == ["index", "model", "k", "results"]


def test_text_that_is_not_utf8_is_refused_before_it_joins_a_batch(index):
    """While the encoder is held, good requests wait in the queue; one with a lone surrogate gets its 422 at once
    (it is never queued), and the waiting ones, encoded together afterwards, all succeed."""
    slow = _SlowIndex(index)
    app = create_app({"main": slow}, ServerLimits(max_pending=8))
    with running_server(app) as url, httpx.Client(base_url=url, timeout=120) as http:
        outcomes, threads = _one_encoding_two_waiting(http, slow)
        try:  # the bodies as json.dumps writes them: the lone surrogate as the escape "\ud800"
            # answered while the encoder is held: a request queued behind it would time out here
            bad_search = post(http, "/search", {"queries": ["beer q9", "stout \ud800"], "k": 2}, timeout=30)
            bad_embed = post(http, "/embed", {"texts": ["\ud800"]}, timeout=30)
            assert http.get("/health").json()["indexes"]["main"]["pending"] == 2  # neither was queued
        finally:
            slow.release.set()
        for thread in threads:
            thread.join(120)
        good_after = http.post("/search", json={"query": "beer q1", "k": 2})
    assert bad_search.status_code == 422 and bad_search.json()["field"] == "queries"
    assert "'queries[1]': not valid UTF-8 text: character 7 is a lone surrogate (U+D800)" in bad_search.json()["error"]
    assert bad_embed.status_code == 422 and "'texts[0]': not valid UTF-8 text" in bad_embed.json()["error"]
    assert all(outcomes[name].status_code == 200 for name in outcomes), {n: r.text for n, r in outcomes.items()}
    assert good_after.status_code == 200 and good_after.json()["results"][0]["query"] == "beer q1"


def test_a_lone_surrogate_that_reaches_the_batcher_fails_only_its_own_job(index):
    """Below the API's check: the library refuses the text (DataError naming it) and the jobs batched with it get
    the results they would get alone."""
    import asyncio

    from qaembed.errors import DataError
    from qaembed.serve.batcher import Batcher

    slow = _SlowIndex(index)
    batcher = Batcher(slow, max_pending=8, max_batch=16)

    async def scenario():
        batcher.start()
        first = asyncio.create_task(batcher.submit("search", ["warm"], 2))
        while not slow.entered.is_set():
            await asyncio.sleep(0.01)
        jobs = [asyncio.create_task(batcher.submit("search", [text], 2)) for text in ("foam", "hops \ud800", "malt")]
        try:
            while batcher.pending < 3:
                await asyncio.sleep(0.01)
        finally:
            slow.release.set()
        outcomes = await asyncio.gather(first, *jobs, return_exceptions=True)
        await batcher.stop()
        return outcomes

    warm, foam, bad, malt = asyncio.run(scenario())
    assert isinstance(bad, DataError) and "query 1 is not valid UTF-8 text" in str(bad)
    for outcome, text in ((foam, "foam"), (malt, "malt")):
        [expected] = index.search([text], k=2)
        [result] = outcome
        assert [hit.id for hit in result.hits] == [hit.id for hit in expected.hits]
