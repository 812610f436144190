"""SearchIndex query language: parsing and evaluation, table-driven."""

from __future__ import annotations

import pytest

from iot_simulator.query import (
    And,
    MatchAll,
    Not,
    Or,
    QueryError,
    Term,
    count_terms,
    parse,
)

DOC = {
    "thingName": ["pump-007"],
    "thingTypeName": ["pump"],
    "thingGroupNames": ["site-a", "site-a-line-1"],
    "attributes.fw": ["1.2.0"],
    "attributes.room": ["boiler room"],
    "connectivity.connected": ["false"],
    "connectivity.disconnectReason": ["CONNECTION_LOST"],
    "connectivity.timestamp": ["1700000000123"],
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("thingName:pump-007", True),
        ("thingName:pump-00", False),
        ("thingName:pump*", True),
        ("thingName:*007", True),
        ("thingName:p?mp-007", True),
        ("thingName:*", True),
        ("thingGroupNames:site-a", True),
        ("thingGroupNames:site-a-line-1", True),
        ("thingGroupNames:site-b", False),
        ("thingTypeName:pump", True),
        ("thingTypeName:sensor", False),
        ("attributes.fw:1.2.0", True),
        ("attributes.fw:1.2.*", True),
        ("attributes.missing:x", False),
        ('attributes.room:"boiler room"', True),
        ('attributes.room:"boiler*"', True),
        ("connectivity.connected:false", True),
        ("connectivity.connected:true", False),
        ("connectivity.disconnectReason:CONNECTION_LOST", True),
        ("connectivity.disconnectReason:AUTH_ERROR", False),
        ("connectivity.timestamp>1700000000000", True),
        ("connectivity.timestamp<1700000000000", False),
        ("connectivity.timestamp>=1700000000123", True),
        ("connectivity.timestamp<=1700000000122", False),
        ("thingName:pump* AND connectivity.connected:false", True),
        ("thingName:pump* connectivity.connected:true", False),  # side by side means AND
        ("thingName:sensor* OR connectivity.connected:false", True),
        ("thingName:sensor* OR connectivity.connected:true", False),
        ("NOT connectivity.connected:true", True),
        ("NOT NOT connectivity.connected:true", False),
        ("thingTypeName:pump AND NOT thingGroupNames:site-b", True),
        ("(thingName:x OR thingName:pump*) AND attributes.fw:1.*", True),
        ("thingName:x OR thingName:y AND thingName:pump*", False),  # AND binds tighter
        ("(thingName:x OR thingName:pump*) AND (attributes.fw:2* OR thingTypeName:pump)", True),
        ("NOT (thingName:x OR thingName:y)", True),
        # A bare * matches every document (AWS documents it for counting the whole index).
        ("*", True),
        ("* AND thingTypeName:sensor", False),
        ("NOT *", False),
        # Field grouping: the words inside are values of the field before the colon.
        ("thingGroupNames:(site-b OR site-a)", True),
        ("thingGroupNames:(site-b OR site-c)", False),
        ("thingGroupNames:(site-a site-a-line-1)", True),  # side by side means AND
        ("thingGroupNames:(site-a AND NOT site-a-line-1)", False),
        ('attributes.room:("boiler room" OR attic)', True),
        ("thingGroupNames:(site-b) OR connectivity.connected:false", True),
        ("thingGroupNames:(x OR y) thingTypeName:pump", False),
        ("thingName:(pump* AND -*008)", True),
        ("thingName:(pump* AND -*007)", False),
        ("thingGroupNames:(*line*)", True),
        # The hyphen excludes, as NOT does.
        ("-thingTypeName:sensor", True),
        ("-thingTypeName:pump", False),
        ("-(thingTypeName:sensor OR thingName:x)", True),
        ("thingTypeName:pump -connectivity.connected:true", True),
        ("thingName:-x", False),  # a hyphen inside a value is just a character
    ],
)
def test_query_matches(query: str, expected: bool) -> None:
    assert parse(query).matches(DOC) is expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "empty query"),
        ("   ", "empty query"),
        ("thingName", "expected field:value"),
        ("thingName:", "missing value"),
        ("nosuchfield:x", "unknown field"),
        ("attributes.:x", "unknown field"),
        ("thingName:a AND", "query ends"),
        ("OR thingName:a", "unexpected 'OR'"),
        ("(thingName:a", "missing ')'"),
        ("thingName:a)", "unexpected ')'"),
        ("NOT", "query ends"),
        ('attributes.x:"unterminated', "unterminated quote"),
        ("connectivity.timestamp>soon", "needs a number"),
        ("thingName:a AND AND thingName:b", "unexpected 'AND'"),
        ("thingGroupNames:(a OR", "query ends"),
        ("thingGroupNames:(a", "missing ')'"),
        ("thingGroupNames:()", "unexpected ')'"),
        ("nosuch:(a OR b)", "unknown field"),
        ("thingName:(a OR thingGroupNames:(b))", "inside the field group"),
        ("-", "expected field:value"),
        ('thingGroupNames:("" OR a)', "missing value"),
        (" ".join(f"thingName:t{i}" for i in range(13)), "13 terms; at most 12"),
        ("thingGroupNames:(" + " OR ".join(f"g{i}" for i in range(13)) + ")", "13 terms"),
        ("* " * 13, "13 terms"),
    ],
)
def test_query_errors(query: str, message: str) -> None:
    with pytest.raises(QueryError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(query)


@pytest.mark.parametrize(
    ("query", "terms"),
    [
        ("*", 1),
        ("thingName:a", 1),
        ("NOT thingName:a OR thingTypeName:b", 2),
        ("thingGroupNames:(a OR b OR c) AND -thingTypeName:x", 4),
        (" OR ".join(f"thingName:t{i}" for i in range(12)), 12),
        ("thingGroupNames:(" + " OR ".join(f"g{i}" for i in range(12)) + ")", 12),
    ],
)
def test_terms_are_counted_as_aws_limits_them(query: str, terms: int) -> None:
    assert count_terms(parse(query)) == terms


def test_field_group_tree_shape() -> None:
    assert parse("thingGroupNames:(a OR -b)") == Or(
        (Term("thingGroupNames", ":", "a"), Not(Term("thingGroupNames", ":", "b")))
    )
    assert parse("*") == MatchAll()


def test_query_tree_shape() -> None:
    expr = parse("thingName:a OR NOT thingName:b thingTypeName:c")
    assert expr == Or(
        (
            Term("thingName", ":", "a"),
            And((Not(Term("thingName", ":", "b")), Term("thingTypeName", ":", "c"))),
        )
    )


def test_value_may_contain_colons() -> None:
    assert parse("thingName:arn:x").matches({"thingName": ["arn:x"]})


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # A shard's prefix disjunction, tested with one startswith.
        ("thingName:pump* OR thingName:valve*", True),
        ("thingName:valve* OR thingName:fan*", False),
        ("thingName:pump-0* OR thingName:pump-007*", True),
        # Not a plain prefix set: the general path, with the same answers.
        ("thingName:valve* OR thingTypeName:pump*", True),
        ("thingName:valve* OR thingName:*007", True),
        ("thingName:p?mp* OR thingName:x*", True),
        ("thingName:pump-007 OR thingName:x*", True),
        ("attributes.missing:a* OR attributes.missing:b*", False),
    ],
)
def test_prefix_disjunctions_answer_as_their_terms_do(query: str, expected: bool) -> None:
    expr = parse(query)
    assert isinstance(expr, Or)
    assert expr.matches(DOC) is expected
    assert any(operand.matches(DOC) for operand in expr.operands) is expected


def _disjunction(query: str) -> Or:
    expr = parse(query)
    assert isinstance(expr, Or)
    return expr


def test_only_a_disjunction_of_plain_prefixes_on_one_field_takes_the_fast_path() -> None:
    assert _disjunction("thingId:a* OR thingId:b0*").prefixes == ("thingId", ("a", "b0"))
    for query in (
        "thingId:a* OR thingName:b*",
        "thingId:a* OR thingId:b",
        "thingId:a*b OR thingId:c*",
    ):
        assert _disjunction(query).prefixes is None, query
