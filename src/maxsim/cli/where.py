"""The CLI's ``--where`` clauses as a metadata filter (``maxsim.search.filters`` semantics)."""

from __future__ import annotations

import json
import re

from maxsim.errors import InvalidInputError
from maxsim.search.filters import compile_filter

WHERE_HELP = ("Metadata filter clause, repeatable (AND): 'lang = en', 'year >= 2020', 'tag in a,b', "
              "'tag not in c' or a JSON object such as '{\"year\": {\"$lt\": 2000}}'.")

_CLAUSE = re.compile(r"\s*(?P<field>[^\s=!<>]+)\s*(?P<op>==|=|!=|>=|<=|>|<)\s*(?P<value>.*?)\s*", re.S)
_LIST_CLAUSE = re.compile(r"\s*(?P<field>[^\s=!<>]+)\s+(?P<op>not\s+in|in)\s+(?P<value>.*?)\s*", re.S | re.I)
_ITEM = re.compile(r"""\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^,]*?)\s*(,|\Z)""", re.S)
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_OPS = {"=": "$eq", "==": "$eq", "!=": "$ne", ">": "$gt", ">=": "$gte", "<": "$lt", "<=": "$lte"}
_WORDS = {"true": True, "false": False, "null": None}


def parse_where(clauses: list[str]) -> dict:
    """The filter of the CLI's ``--where`` clauses, AND-ed (``{}`` for none). A clause is a JSON
    object, ``FIELD OP VALUE`` with OP one of ``= != > >= < <=``, or ``FIELD in V1,V2`` /
    ``FIELD not in V1,V2``. Values that look like a number, ``true``, ``false`` or ``null`` are
    those; quote (``'2020'`` or ``"2020"``) to keep a string."""
    filters = [_where(clause) for clause in clauses]
    return filters[0] if len(filters) == 1 else {"$and": filters} if filters else {}


def _where(clause: str) -> dict:
    where = f"--where {clause!r}"
    if clause.strip().startswith("{"):
        try:
            result = json.loads(clause)
        except ValueError as error:
            raise InvalidInputError(f"{where}: invalid JSON ({error}).") from None
    else:
        result = _comparison(clause, where)
    try:
        compile_filter(result)
    except InvalidInputError as error:
        raise type(error)(f"{where}: {error}") from None
    return result


def _comparison(clause: str, where: str) -> dict:
    match = _LIST_CLAUSE.fullmatch(clause)
    if match:
        op = "$nin" if match["op"].lower() != "in" else "$in"
        return {match["field"]: {op: _items(match["value"], where)}}
    match = _CLAUSE.fullmatch(clause)
    if not match:
        raise InvalidInputError(f"{where}: expected FIELD OP VALUE with OP one of =, !=, >, >=, <, <=, "
                                f"'FIELD in V1,V2', 'FIELD not in V1,V2', or a JSON object.")
    if match["value"][:1] in ("=", "!", "<", ">"):  # 'year >> 3', 'a =< 1': not an operator we know
        op = clause[match.start("op"): match.start("value") + len(re.match(r"[=!<>]*", match["value"])[0])]
        raise InvalidInputError(f"{where}: unknown operator {op!r}; use one of =, !=, >, >=, <, <= (quote a value "
                                "that starts with one of =!<>, e.g. \"a = '>3'\").")
    value = _value(match["value"], where)
    return {match["field"]: value if match["op"] in ("=", "==") else {_OPS[match["op"]]: value}}


def _items(text: str, where: str) -> list:
    items, pos = [], 0
    while True:
        match = _ITEM.match(text, pos)
        items.append(_value(match[1], where))
        if not match[2]:
            return items
        pos = match.end()


def _value(text: str, where: str):
    if not text:
        raise InvalidInputError(f"{where}: missing value; write an empty string as ''.")
    if text[0] in "'\"":
        if len(text) < 2 or text[-1] != text[0]:
            raise InvalidInputError(f"{where}: unterminated quote in {text!r}.")
        if text[0] == "'":
            return text[1:-1]
        try:
            return json.loads(text)
        except ValueError:
            raise InvalidInputError(f"{where}: bad double-quoted string {text!r} (JSON escapes only).") from None
    if text in _WORDS:
        return _WORDS[text]
    if _NUMBER.fullmatch(text):
        return float(text) if any(c in text for c in ".eE") else int(text)
    return text
