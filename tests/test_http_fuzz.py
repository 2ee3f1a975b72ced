"""Fuzzing every route of a real uvicorn with hypothesis (derandomized, bounded): request bodies
near the schemas (wrong types, NaN/Infinity, huge numbers, lone surrogates, deep nesting, unknown
fields, filters of any shape) and odd ids in paths. Every answer is JSON with a status below 500."""

import json
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maxsim.server import LiveRetriever, create_app
from test_server import AUTH, KEY, LIMITS, build_index, serve_in_thread

EXAMPLES = 40
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

texts = st.one_of(st.text(max_size=40), st.sampled_from(["flow", "\ud800", "a\udfffb", "", " ", "x" * 3001]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), texts,
                    st.floats(allow_nan=True, allow_infinity=True))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(texts, inner, max_size=4)), max_leaves=12)
operators = st.sampled_from(["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$and", "$or", "$not",
                             "$bogus", "year", "lab"])
filters = st.recursive(st.dictionaries(operators, scalars, max_size=3),
                       lambda inner: st.dictionaries(operators, st.one_of(inner, st.lists(inner, max_size=3)),
                                                     max_size=3), max_leaves=8)


def maybe(strategy):
    """A field that is absent, well-typed-ish (``strategy``) or any JSON value."""
    return st.one_of(st.just(...), strategy, values)


def body(**fields):
    """Objects with these fields (each possibly absent or of any type), sometimes an extra field."""
    return st.fixed_dictionaries({name: maybe(s) for name, s in fields.items()},
                                 optional={"extra": values}).map(lambda d: {k: v for k, v in d.items() if v is not ...})


document = body(id=texts, text=texts, metadata=st.one_of(st.dictionaries(texts, values, max_size=3), values))
ROUTES = {
    "search": ("POST", "/search", st.one_of(values, body(queries=st.lists(texts, max_size=3),
                                                         k=st.integers(-3, 2000), hybrid=st.booleans(),
                                                         filter=filters))),
    "add": ("POST", "/documents", st.one_of(values, body(documents=st.lists(document, max_size=3)))),
    "explain": ("POST", "/explain", st.one_of(values, body(query=texts, id=texts))),
    "upsert": ("PUT", "/documents/{id}", st.one_of(values, body(text=texts, metadata=values))),
}


@pytest.fixture(scope="module")
def client(tiny_model, tmp_path_factory):
    live = LiveRetriever(build_index(tmp_path_factory.mktemp("fuzz") / "index", tiny_model, n=8), tiny_model,
                         readers=2)
    with serve_in_thread(create_app(live, api_key=KEY, limits=LIMITS)) as base:
        with httpx.Client(base_url=base, headers=AUTH, timeout=60) as client:
            yield client
    live.close()


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text[:500]  # a client error or success, never a server error
    json.loads(response.content)  # always a JSON answer


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_bodies_never_500(client, route):
    method, path, bodies = ROUTES[route]

    @FUZZ
    @given(payload=bodies, doc_id=texts.filter(bool))
    def run(payload, doc_id):
        content = json.dumps(payload, allow_nan=True).encode()  # NaN / Infinity literals included
        check(client.request(method, path.replace("{id}", quote(doc_id, safe="", errors="surrogatepass")),
                             content=content, headers={"Content-Type": "application/json"}))

    run()


@FUZZ
@given(doc_id=texts.filter(bool), raw=st.binary(max_size=64))
def test_ids_and_raw_bytes_never_500(client, doc_id, raw):
    path = "/documents/" + quote(doc_id, safe="/", errors="surrogatepass")
    for method in ("GET", "DELETE"):
        check(client.request(method, path))
    check(client.post("/search", content=raw, headers={"Content-Type": "application/json"}))
    check(client.get("/stats"))
