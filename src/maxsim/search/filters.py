"""Mongo-style metadata filters, compiled to indexed SQL over the store's ``fields`` table.

The store keeps one ``fields`` row per indexed metadata value of a document (``field_rows``);
``compile_filter`` turns ``{"lang": "en", "year": {"$gte": 2020}}`` into an SQL boolean expression
over ``documents d`` made of ``d.id IN (SELECT doc FROM fields WHERE key = ? AND ...)`` sub-selects,
each one a range of the ``fields_value`` index.
Semantics (types, arrays, missing fields): docs/search.md, "Metadata filters".
"""

from __future__ import annotations

import json
import math

from maxsim.errors import InvalidInputError, LimitExceededError

# type tags of fields.t; numbers compare only with numbers, strings with strings
NULL, BOOL, NUMBER, STRING, ARRAY, OBJECT = range(6)

FIELDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS fields (
    doc TEXT NOT NULL,
    key TEXT NOT NULL,
    t INTEGER NOT NULL,
    v,
    crc INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS fields_value ON fields (key, t, v, doc, crc);
CREATE INDEX IF NOT EXISTS fields_doc ON fields (doc);
"""
"""DDL of ``fields`` (several statements: run with ``executescript`` or split on ``;``).
``doc``: documents.id; ``key``: dotted path; ``t``: type tag; ``v``: number, string, 0/1 for a
bool, NULL for null, an array marker or an object marker (``v`` has no affinity: stored as given);
``crc``: the row's checksum (``maxsim.search.integrity``), in the value index too so that a filter's
index entries can be verified."""

FIELDS_INSERT = "INSERT INTO fields (doc, key, t, v) VALUES (?, ?, ?, ?)"

MAX_DEPTH = 32          # nesting of $and / $or / $nor / $not (and of metadata objects indexed)
MAX_CLAUSES = 256       # operators and combinators in one filter (SQLite caps expression depth at 1000)
MAX_VALUES = 10_000     # values compared in one filter (SQL parameters; SQLite may cap them at 32,766)

INT64 = 2 ** 63
COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
OPERATORS = ("$eq", "$ne", *COMPARISONS, "$in", "$nin", "$exists", "$not")
COMBINATORS = ("$and", "$or", "$nor", "$not")


# -- rows of one document -----------------------------------------------------------------------
def field_rows(metadata: dict | None) -> list[tuple[str, int, object]]:
    """``(key, t, v)`` rows of one document's metadata, without the doc column: insert each as
    ``FIELDS_INSERT`` with ``(doc_id, key, t, v)``. Nested objects give dotted keys (``a.b``) and an
    ``OBJECT`` marker row for ``a``; a list gives an ``ARRAY`` marker row and one row per scalar
    element (elements that are objects are indexed under the same key, nested lists are not).
    ``metadata`` is seen as its JSON round trip (what the store keeps). Duplicates are dropped."""
    if metadata is None:
        return []
    try:
        metadata = json.loads(json.dumps(metadata))
    except (TypeError, ValueError) as error:
        raise InvalidInputError(f"metadata: not JSON-serialisable ({error}); use str, numbers, bools, "
                                f"None, lists and dicts with str keys.") from None
    if not isinstance(metadata, dict):
        raise InvalidInputError(f"metadata: expected a dict, got {_kind(metadata)}.")
    rows: dict[tuple, None] = {}
    _object_rows(metadata, "", 1, rows)
    return list(rows)


def _object_rows(obj: dict, prefix: str, depth: int, rows: dict) -> None:
    if depth > MAX_DEPTH:
        raise LimitExceededError(f"metadata[{prefix!r}]: objects nested deeper than {MAX_DEPTH} levels; "
                                 f"flatten the metadata.")
    for key, value in obj.items():
        _value_rows(f"{prefix}{key}", value, depth, rows, in_list=False)


def _value_rows(key: str, value, depth: int, rows: dict, in_list: bool) -> None:
    if isinstance(value, dict):
        rows[(key, OBJECT, None)] = None
        _object_rows(value, key + ".", depth + 1, rows)
    elif isinstance(value, list):
        rows[(key, ARRAY, None)] = None
        if not in_list:  # the elements of a list are matched, not those of a list inside it
            for element in value:
                _value_rows(key, element, depth, rows, in_list=True)
    else:
        rows[(key, *_typed(value))] = None


def _typed(value) -> tuple[int, object]:
    """(type tag, stored value) of a JSON scalar; NaN is kept as a number that matches nothing."""
    if value is None:
        return NULL, None
    if isinstance(value, bool):
        return BOOL, int(value)
    if isinstance(value, str):
        return STRING, value
    if isinstance(value, int) and not -INT64 <= value < INT64:
        return NUMBER, float(value)  # beyond SQLite's 64-bit integers
    return NUMBER, None if math.isnan(value) else value


# -- filter -> SQL --------------------------------------------------------------------------------
def compile_filter(filter: dict) -> tuple[str, list]:
    """SQL boolean expression over ``documents d`` (``SELECT d.id FROM documents d WHERE <expr>``)
    and its parameters. Raises ``InvalidInputError`` naming the bad clause, e.g.
    ``filter['year']['$gte']: expected a number or string, got list``; ``LimitExceededError`` past
    ``MAX_DEPTH`` / ``MAX_CLAUSES`` / ``MAX_VALUES``. ``{}`` matches every document."""
    compiler = _Compiler()
    return compiler.filter(filter, "filter", 0), compiler.params


class _Compiler:
    """One compilation: the parameters bound so far and the clause budget."""

    def __init__(self):
        self.params: list = []
        self.clauses = self.values = 0

    def filter(self, obj, path: str, depth: int) -> str:
        if not isinstance(obj, dict):
            raise InvalidInputError(f"{path}: expected an object of field conditions, got {_kind(obj)}.")
        parts = [self.clause(key, value, f"{path}[{key!r}]", depth) for key, value in obj.items()]
        return _join(parts, "AND", "1")

    def clause(self, key, value, path: str, depth: int) -> str:
        self._count(path, depth)
        if key in ("$and", "$or", "$nor"):
            parts = [self.filter(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(_filters(value, path))]
            joined = _join(parts, "AND" if key == "$and" else "OR", "1")
            return f"NOT ({joined})" if key == "$nor" else joined
        if key == "$not":
            return f"NOT ({self.filter(value, path, depth + 1)})"
        return self.field(_field_key(key, path), value, path, depth)

    def field(self, key: str, cond, path: str, depth: int) -> str:
        if not isinstance(cond, dict):
            return self.equal(key, cond, path)
        if not cond:
            raise InvalidInputError(f"{path}: empty condition; give a value or operators such as {{'$eq': ...}}.")
        parts = [self.operator(key, op, value, f"{path}[{op!r}]", depth) for op, value in cond.items()]
        return _join(parts, "AND", "1")

    def operator(self, key: str, op, value, path: str, depth: int) -> str:
        self._count(path, depth)
        if op in ("$eq", "$ne"):
            sql = self.equal(key, value, path)
        elif op in COMPARISONS:
            sql = self.compare(key, COMPARISONS[op], value, path)
        elif op in ("$in", "$nin"):
            sql = self.member(key, value, path)
        elif op == "$exists":
            sql = self.exists(key, value, path)
        elif op == "$not":
            if not isinstance(value, dict) or not value:
                raise InvalidInputError(f"{path}: expected an object of operators such as {{'$gt': 1}}, "
                                        f"got {_kind(value)}.")
            sql = self.field(key, value, path, depth + 1)
        else:
            hint = "" if str(op).startswith("$") else f" (write a nested field as the dotted path '{key}.{op}')"
            raise _unknown(op, path, OPERATORS, hint)
        return f"NOT ({sql})" if op in ("$ne", "$nin", "$not") else sql

    def equal(self, key: str, value, path: str) -> str:
        return self.member(key, [value], path, single=True)

    def compare(self, key: str, sign: str, value, path: str) -> str:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidInputError(f"{path}: expected a number or string, got {_kind(value)}.")
        t, v = _typed(_checked_scalar(value, path))
        return self._select(key, f"t = {t} AND v {sign} ?", [v], path)

    def member(self, key: str, values, path: str, single: bool = False) -> str:
        """Documents with an element equal to one of ``values``; a null also matches a missing field."""
        if not single and not isinstance(values, list):
            raise InvalidInputError(f"{path}: expected a list of numbers, strings, bools or nulls, "
                                    f"got {_kind(values)}.")
        by_type: dict[int, list] = {}
        for i, value in enumerate(values):
            t, v = _typed(_checked_scalar(value, path if single else f"{path}[{i}]"))
            by_type.setdefault(t, []).append(v)
        nulls = by_type.pop(NULL, None) is not None
        parts = [self._select(key, f"t = {t} AND v IN ({_marks(vs)})", vs, path) for t, vs in by_type.items()]
        if nulls:
            parts += [self._select(key, f"t = {NULL}", [], path), f"NOT {self._select(key, '1', [], path)}"]
        return _join(parts, "OR", "0")

    def exists(self, key: str, value, path: str) -> str:
        if not isinstance(value, bool):
            raise InvalidInputError(f"{path}: expected true or false, got {_kind(value)}.")
        sql = self._select(key, "1", [], path)
        return sql if value else f"NOT {sql}"

    def _select(self, key: str, cond: str, params: list, path: str) -> str:
        self.params += [key, *params]
        self.values += len(params)
        if self.values > MAX_VALUES:
            raise LimitExceededError(f"{path}: the filter holds more than {MAX_VALUES} values; split it or "
                                     f"pass the ids as a subset.")
        return f"d.id IN (SELECT doc FROM fields WHERE key = ? AND ({cond}))"

    def _count(self, path: str, depth: int) -> None:
        self.clauses += 1
        if depth > MAX_DEPTH:
            raise LimitExceededError(f"{path}: filter nested deeper than {MAX_DEPTH} levels.")
        if self.clauses > MAX_CLAUSES:
            raise LimitExceededError(f"{path}: filter has more than {MAX_CLAUSES} clauses.")


def _filters(value, path: str) -> list:
    if not isinstance(value, list) or not value:
        raise InvalidInputError(f"{path}: expected a non-empty list of filters, got {_kind(value)}.")
    return value


def _field_key(key, path: str) -> str:
    if not isinstance(key, str):
        raise InvalidInputError(f"{path}: a field name must be a string, got {_kind(key)}.")
    if key.startswith("$"):
        raise _unknown(key, path, COMBINATORS, " or a field name")
    if "" in key.split("."):
        raise InvalidInputError(f"{path}: empty field name; name nested fields as 'a.b'.")
    return key


def _checked_scalar(value, path: str):
    if value is not None and not isinstance(value, (bool, int, float, str)):
        hint = "; use {'$in': [...]} for a list" if isinstance(value, list) else ""
        raise InvalidInputError(f"{path}: expected a number, string, bool or null, got {_kind(value)}{hint}.")
    if isinstance(value, float) and math.isnan(value):
        raise InvalidInputError(f"{path}: NaN matches nothing; give a number.")
    return value


def _unknown(op, path: str, known: tuple, extra: str) -> InvalidInputError:
    return InvalidInputError(f"{path}: unknown operator {op!r}; use one of {', '.join(known)}{extra}.")


def _kind(value) -> str:
    return "null" if value is None else type(value).__name__


def _join(parts: list[str], op: str, empty: str) -> str:
    if not parts:
        return empty
    return parts[0] if len(parts) == 1 else "(" + f" {op} ".join(parts) + ")"


def _marks(values: list) -> str:
    return ", ".join("?" * len(values))
