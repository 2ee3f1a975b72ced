"""Metadata filters: SQL over a real sqlite3 database vs a pure-Python reference of the Mongo semantics."""

import math
import operator
import re
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maxsim.cli.where import parse_where
from maxsim.errors import InvalidInputError, LimitExceededError
from maxsim.search.filters import (
    FIELDS_INSERT,
    FIELDS_SCHEMA,
    MAX_CLAUSES,
    MAX_DEPTH,
    MAX_VALUES,
    compile_filter,
    field_rows,
)


# -- reference evaluator (written from the documented semantics, shares nothing with the module) ---
def resolve(metadata, path):
    """(present, values) of a dotted path: lists of objects are walked, a final list gives its elements."""
    nodes = [metadata or {}]
    for part in path.split("."):
        reached = []
        for node in nodes:
            if isinstance(node, dict) and part in node:
                reached.append(node[part])
            elif isinstance(node, list):
                reached += [e[part] for e in node if isinstance(e, dict) and part in e]
        nodes = reached
    values = [v for node in nodes for v in (node if isinstance(node, list) else [node])]
    return bool(nodes), values


def kind(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    return {int: "number", float: "number", str: "string"}.get(type(v))


def equal(present, values, x):
    if x is None:
        return not present or any(v is None for v in values)
    return any(kind(v) == kind(x) and v == x for v in values)


ORDER = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}


def field_matches(metadata, path, cond):
    present, values = resolve(metadata, path)
    if not isinstance(cond, dict):
        return equal(present, values, cond)
    results = []
    for op, x in cond.items():
        if op in ORDER:
            results.append(any(kind(v) == kind(x) and ORDER[op](v, x) for v in values))
        elif op in ("$eq", "$ne"):
            results.append(equal(present, values, x) == (op == "$eq"))
        elif op in ("$in", "$nin"):
            results.append(any(equal(present, values, y) for y in x) == (op == "$in"))
        elif op == "$exists":
            results.append(present == x)
        else:  # $not
            results.append(not field_matches(metadata, path, x))
    return all(results)


def matches(metadata, flt):
    results = []
    for key, value in flt.items():
        if key == "$and":
            results.append(all(matches(metadata, f) for f in value))
        elif key in ("$or", "$nor"):
            results.append(any(matches(metadata, f) for f in value) == (key == "$or"))
        elif key == "$not":
            results.append(not matches(metadata, value))
        else:
            results.append(field_matches(metadata, key, value))
    return all(results)


# -- a real database ---------------------------------------------------------------------------------
def database(metadatas):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE documents (id TEXT PRIMARY KEY, text TEXT NOT NULL, metadata TEXT)")
    db.executescript(FIELDS_SCHEMA)
    for i, metadata in enumerate(metadatas):
        db.execute("INSERT INTO documents VALUES (?, '', NULL)", (f"d{i}",))
        db.executemany(FIELDS_INSERT, [(f"d{i}", *row) for row in field_rows(metadata)])
    return db


def select(db, flt):
    where, params = compile_filter(flt)
    return {row[0] for row in db.execute(f"SELECT d.id FROM documents d WHERE {where}", params)}


def reference(metadatas, flt):
    return {f"d{i}" for i, metadata in enumerate(metadatas) if matches(metadata, flt)}


# -- random metadata and filters (hypothesis, derandomized) --------------------------------------------
KEYS = st.sampled_from(["a", "b", "c"])
PATHS = st.sampled_from(["a", "b", "c", "a", "b", "c", "a.b", "a.c", "b.a", "a.b.c", "z"])
SCALARS = (st.none() | st.booleans() | st.integers(-1, 2) | st.sampled_from([0.0, 1.0, 1.5, -math.inf])
           | st.sampled_from(["", "a", "B", "ab", "é"]))
VALUES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(KEYS, kids, max_size=3),
                      max_leaves=6)
METADATA = st.dictionaries(KEYS, VALUES, min_size=1, max_size=3) | st.none()
ORDERED = st.integers(-1, 2) | st.sampled_from([0.5, 1.0, "", "a", "ab", "b", "é"])


def operator_conditions(children):
    one = st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne"]), SCALARS),
        st.tuples(st.sampled_from(list(ORDER)), ORDERED),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(SCALARS, max_size=3)),
        st.tuples(st.just("$exists"), st.booleans()),
        st.tuples(st.just("$not"), children),
    )
    return st.lists(one, min_size=1, max_size=2, unique_by=lambda t: t[0]).map(dict)


CONDITIONS = SCALARS | st.recursive(operator_conditions(st.nothing()), operator_conditions, max_leaves=3)
LEAF = st.dictionaries(PATHS, CONDITIONS, min_size=1, max_size=2)
FILTERS = st.recursive(LEAF, lambda kids: st.one_of(
    st.builds(lambda op, fs: {op: fs}, st.sampled_from(["$and", "$or", "$nor"]),
              st.lists(kids, min_size=1, max_size=3)),
    st.builds(lambda f: {"$not": f}, kids),
    st.builds(lambda f, g: {**f, **g}, kids, LEAF)), max_leaves=5)


@settings(max_examples=300, deadline=None, derandomize=True, database=None, print_blob=False,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(METADATA, min_size=3, max_size=8), st.lists(FILTERS, min_size=1, max_size=4))
def test_sql_equals_reference_on_random_metadata_and_filters(metadatas, filters):
    db = database(metadatas)
    for flt in filters:
        assert select(db, flt) == reference(metadatas, flt), flt


# -- hand cases -------------------------------------------------------------------------------------------
DOCS = [
    {"lang": "en", "year": 2021, "tag": ["a", "b"], "n": 1, "flag": True, "author": {"name": "Ada", "born": 1815}},
    {"lang": "fr", "year": "2022", "tag": "a", "n": 1.0, "flag": 1, "x": None},
    {"lang": "en", "year": 2019, "tag": [], "n": True, "refs": [{"id": 1}, {"id": 2, "ok": False}]},
    {"year": 2**70, "tag": ["c"], "x": [None, 3]},
    None,
]
HAND = [
    ({"lang": "en"}, {0, 2}),
    ({"lang": "en", "year": {"$gte": 2020}}, {0}),
    ({"year": {"$gte": 2020}}, {0, 3}),                     # the string "2022" is not a number
    ({"year": {"$gt": "2021"}}, {1}),                       # strings compare with strings only
    ({"tag": "a"}, {0, 1}),                                 # a list matches by any element
    ({"tag": {"$in": ["b", "c"]}}, {0, 3}),
    ({"tag": {"$nin": ["a"]}}, {2, 3, 4}),                  # $nin keeps documents lacking the field
    ({"tag": {"$exists": True}}, {0, 1, 2, 3}),             # an empty list exists
    ({"n": 1}, {0, 1}),                                     # 1 == 1.0, and True is not a number
    ({"flag": True}, {0}),                                  # 1 is not a bool
    ({"lang": {"$ne": "en"}}, {1, 3, 4}),                   # $ne keeps documents lacking the field
    ({"x": None}, {0, 1, 2, 3, 4}),                         # null matches null, a null element, or absence
    ({"tag": None}, {4}),                                   # ... not an empty list
    ({"x": {"$ne": None}}, set()),
    ({"x": {"$exists": False}}, {0, 2, 4}),
    ({"author.name": "Ada"}, {0}),
    ({"author": {"$exists": True}, "author.born": {"$lt": 1900}}, {0}),
    ({"refs.id": 2}, {2}),                                  # lists of objects are walked
    ({"refs.ok": False, "refs.id": 1}, {2}),                # ... each condition by any element
    ({"year": {"$gt": 2**63}}, {3}),                        # integers past 64 bits are kept as floats
    ({"$or": [{"lang": "fr"}, {"tag": "c"}]}, {1, 3}),
    ({"$nor": [{"lang": "fr"}, {"tag": "c"}]}, {0, 2, 4}),
    ({"$not": {"lang": "en"}}, {1, 3, 4}),
    ({"year": {"$not": {"$gte": 2020}}}, {1, 2, 4}),
    ({"$and": [{"lang": "en"}, {"year": {"$lt": 2020}}]}, {2}),
    ({"tag": {"$in": []}}, set()),
    ({"tag": {"$in": ["c", 3, None]}}, {3, 4}),
    ({}, {0, 1, 2, 3, 4}),
]


@pytest.mark.parametrize("flt, expected", HAND, ids=[str(f) for f, _ in HAND])
def test_hand_cases(flt, expected):
    assert select(database(DOCS), flt) == {f"d{i}" for i in expected}
    assert reference(DOCS, flt) == {f"d{i}" for i in expected}


def test_field_rows_contract():
    rows = field_rows({"t": ["a", "a", 2], "o": {"k": [[1]]}, "b": False, "nan": math.nan})
    assert rows == [("t", 4, None), ("t", 3, "a"), ("t", 2, 2), ("o", 5, None), ("o.k", 4, None),
                    ("b", 1, 0), ("nan", 2, None)]
    assert field_rows(None) == [] and field_rows({}) == []


def query_plan(db, flt):
    where, params = compile_filter(flt)
    return " | ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN SELECT d.id FROM documents d WHERE {where}",
                                               params))


def test_query_plan_uses_the_index_for_equality_and_range():
    db = database([{"lang": "en", "year": y} for y in range(300)])
    equality, ranged = query_plan(db, {"lang": "en"}), query_plan(db, {"year": {"$gte": 2020}})
    assert "SEARCH fields USING COVERING INDEX fields_value (key=? AND t=? AND v=?)" in equality
    assert "SEARCH fields USING COVERING INDEX fields_value (key=? AND t=? AND v>?)" in ranged
    for plan in (equality, ranged, query_plan(db, {"lang": "en", "year": {"$lt": 5}})):
        assert "SEARCH d USING" in plan and "SCAN" not in plan, plan


# -- errors -----------------------------------------------------------------------------------------------
ERRORS = [
    ([1], "filter: expected an object of field conditions, got list."),
    ({"year": {"$gte": [1]}}, "filter['year']['$gte']: expected a number or string, got list."),
    ({"year": {"$lt": True}}, "filter['year']['$lt']: expected a number or string, got bool."),
    ({"year": {"$gt": None}}, "filter['year']['$gt']: expected a number or string, got null."),
    ({"year": {"$gt": math.nan}}, "filter['year']['$gt']: NaN matches nothing; give a number."),
    ({"tag": ["a"]},
     "filter['tag']: expected a number, string, bool or null, got list; use {'$in': [...]} for a list."),
    ({"tag": {"$eq": {"x": 1}}}, "filter['tag']['$eq']: expected a number, string, bool or null, got dict."),
    ({"tag": {"$in": "a"}}, "filter['tag']['$in']: expected a list of numbers, strings, bools or nulls, got str."),
    ({"tag": {"$nin": [1, [2]]}}, "filter['tag']['$nin'][1]: expected a number, string, bool or null, got list; "
                                  "use {'$in': [...]} for a list."),
    ({"tag": {"$exists": 1}}, "filter['tag']['$exists']: expected true or false, got int."),
    ({"tag": {}}, "filter['tag']: empty condition; give a value or operators such as {'$eq': ...}."),
    ({"tag": {"$gt": 1, "b": 2}}, "filter['tag']['b']: unknown operator 'b'; use one of $eq, $ne, $gt, $gte, $lt, "
                                  "$lte, $in, $nin, $exists, $not (write a nested field as the dotted path 'tag.b')."),
    ({"tag": {"$regex": "a"}}, "filter['tag']['$regex']: unknown operator '$regex'; use one of $eq, $ne, $gt, $gte, "
                               "$lt, $lte, $in, $nin, $exists, $not."),
    ({"tag": {"$not": 1}}, "filter['tag']['$not']: expected an object of operators such as {'$gt': 1}, got int."),
    ({"$where": "x"}, "filter['$where']: unknown operator '$where'; use one of $and, $or, $nor, $not or a field name."),
    ({"$or": []}, "filter['$or']: expected a non-empty list of filters, got list."),
    ({"$and": {"a": 1}}, "filter['$and']: expected a non-empty list of filters, got dict."),
    ({"$or": [{"a": 1}, "b"]}, "filter['$or'][1]: expected an object of field conditions, got str."),
    ({"$not": [{"a": 1}]}, "filter['$not']: expected an object of field conditions, got list."),
    ({"a..b": 1}, "filter['a..b']: empty field name; name nested fields as 'a.b'."),
    ({1: 1}, "filter[1]: a field name must be a string, got int."),
]


@pytest.mark.parametrize("flt, message", ERRORS, ids=[m.split(":")[0] for _, m in ERRORS])
def test_malformed_filter_names_the_clause(flt, message):
    with pytest.raises(InvalidInputError, match=f"^{re.escape(message)}$"):
        compile_filter(flt)


def test_limits_stop_an_attacker_early_and_the_largest_allowed_filter_runs():
    deep = {"a": 1}
    for _ in range(10_000):
        deep = {"$and": [deep]}
    with pytest.raises(LimitExceededError, match=f"nested deeper than {MAX_DEPTH} levels"):
        compile_filter(deep)
    with pytest.raises(LimitExceededError, match=f"more than {MAX_CLAUSES} clauses"):
        compile_filter({"$or": [{"a": i} for i in range(MAX_CLAUSES)]})
    compile_filter({"a": {"$in": list(range(MAX_VALUES))}})  # the documented most: MAX_VALUES values
    with pytest.raises(LimitExceededError, match=rf"^filter\['a'\]\['\$in'\]: the filter holds more than {MAX_VALUES}"):
        compile_filter({"a": {"$in": list(range(MAX_VALUES + 1))}})
    nots = MAX_DEPTH - 1
    widest = {"$and": [{"a": {"$in": [None, i, str(i)]}} for i in range((MAX_CLAUSES - 1 - nots) // 2)]}
    for _ in range(nots):
        widest = {"$not": widest}
    db = database([{"a": 1}, {"b": 2}])
    assert select(db, widest) == reference([{"a": 1}, {"b": 2}], widest)  # SQLite accepts the expression depth


# -- --where --------------------------------------------------------------------------------------------
WHERE = [
    (["year>=2020"], {"year": {"$gte": 2020}}),
    (["lang=en"], {"lang": "en"}),
    (["lang == 'en'"], {"lang": "en"}),
    (["year != 2020.5"], {"year": {"$ne": 2020.5}}),
    (["zip='02139'"], {"zip": "02139"}),
    (['zip="021\\"39"'], {"zip": '021"39'}),
    (["x<-1e3", "y>.5"], {"$and": [{"x": {"$lt": -1000.0}}, {"y": {"$gt": 0.5}}]}),
    (["flag=false"], {"flag": False}),
    (["x=null"], {"x": None}),
    (["author.name = Ada Lovelace"], {"author.name": "Ada Lovelace"}),
    (["tag in a,b"], {"tag": {"$in": ["a", "b"]}}),
    (["tag in 'a,b', 3 ,null"], {"tag": {"$in": ["a,b", 3, None]}}),
    (["tag NOT IN a"], {"tag": {"$nin": ["a"]}}),
    (['{"$or": [{"a": 1}, {"b": {"$lt": 2}}]}', "c=x"], {"$and": [{"$or": [{"a": 1}, {"b": {"$lt": 2}}]}, {"c": "x"}]}),
    ([], {}),
]


@pytest.mark.parametrize("clauses, expected", WHERE, ids=[" & ".join(c) or "none" for c, _ in WHERE])
def test_parse_where(clauses, expected):
    assert parse_where(clauses) == expected


WHERE_ERRORS = [
    ("year", "--where 'year': expected FIELD OP VALUE with OP one of =, !=, >, >=, <, <=, 'FIELD in V1,V2', "
             "'FIELD not in V1,V2', or a JSON object."),
    ("year>=", "--where 'year>=': missing value; write an empty string as ''."),
    ("lang='en", "--where \"lang='en\": unterminated quote in \"'en\"."),
    ('lang="a\\q"', "--where 'lang=\"a\\\\q\"': bad double-quoted string '\"a\\\\q\"' (JSON escapes only)."),
    ("tag in a,", "--where 'tag in a,': missing value; write an empty string as ''."),
    ("y>true", "--where 'y>true': filter['y']['$gt']: expected a number or string, got bool."),
    ("{bad", "--where '{bad': invalid JSON (Expecting property name enclosed in double quotes: line 1 column 2 "
             "(char 1))."),
    ('{"year": {"$gte": [1]}}', "--where '{\"year\": {\"$gte\": [1]}}': filter['year']['$gte']: expected a number "
                                "or string, got list."),
]


@pytest.mark.parametrize("clause, message", WHERE_ERRORS, ids=[c for c, _ in WHERE_ERRORS])
def test_parse_where_errors_name_the_clause(clause, message):
    with pytest.raises(InvalidInputError, match=f"^{re.escape(message)}$"):
        parse_where(["lang=en", clause])
