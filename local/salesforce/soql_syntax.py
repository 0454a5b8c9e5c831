"""SOQL text to syntax tree: the lexer, the parser and Salesforce-style located error messages.

The tree is immutable (frozen dataclasses and tuples) so a parsed query can be cached and shared.
Every node keeps the offset of its first character so schema errors found later can point at it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

from local.salesforce.soql_dates import FISCAL_PREFIXES, N_LITERALS, PLAIN_LITERALS

#: Salesforce's maximum SOQL statement length.
MAX_QUERY_LENGTH = 100_000
#: OFFSET above this fails NUMBER_OUTSIDE_VALID_RANGE.
MAX_OFFSET = 2000
#: LIMIT, OFFSET and ``:n`` counts are 32-bit integers.
MAX_INT32 = 2_147_483_647
#: Parent-path depth Salesforce allows (``Contact.Account.Owner.Manager.Profile.Name`` is five).
MAX_RELATIONSHIP_DEPTH = 5
#: Parenthesis / NOT nesting bound of the WHERE parser.
MAX_NESTING = 100


class SoqlError(Exception):
    """A query Salesforce would refuse: ``code`` is the API errorCode, ``message`` its message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def error_at(code: str, text: str, pos: int, description: str) -> SoqlError:
    """An error laid out like Salesforce's: the query line, a caret, ``ERROR at Row:R:Column:C``."""
    pos = max(0, min(pos, len(text)))
    line_start = text.rfind("\n", 0, pos) + 1
    line_end = text.find("\n", pos)
    if line_end < 0:
        line_end = len(text)
    line = text[line_start:line_end].rstrip("\r")
    row = text.count("\n", 0, pos) + 1
    column = pos - line_start + 1
    caret = " " * (column - 1) + "^"
    return SoqlError(code, f"\n{line}\n{caret}\nERROR at Row:{row}:Column:{column}\n{description}")


# --------------------------------------------------------------------------------------------
# Syntax tree
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A field reference as written: ``Name``, ``Account.Owner.Name``, ``a.Name`` (alias)."""

    parts: tuple[str, ...]
    text: str
    pos: int


@dataclass(frozen=True, slots=True)
class Value:
    """A literal in a WHERE clause.

    ``kind`` is one of ``string``, ``number``, ``boolean``, ``null``, ``date``, ``datetime``,
    ``time`` or ``relative``. ``value`` holds the typed value (``str``, ``Decimal``, ``bool``,
    ``None``, ``date``, aware UTC ``datetime``, ``time``) or, for relative literals, the literal's
    upper-case name with ``n`` its argument. ``literal_wildcards`` lists the offsets in a string
    value of ``%`` and ``_`` characters that were escaped (``\\%``, ``\\_``), i.e. not LIKE wildcards.
    """

    kind: str
    value: Any
    text: str
    pos: int
    n: int | None = None
    literal_wildcards: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class Comparison:
    """``path op value`` where op is one of ``= != < <= > >= LIKE IN NOT_IN INCLUDES EXCLUDES``."""

    path: FieldPath
    op: str
    values: tuple[Value, ...]
    pos: int


@dataclass(frozen=True, slots=True)
class Not:
    operand: Condition
    pos: int


@dataclass(frozen=True, slots=True)
class Junction:
    """``AND`` or ``OR`` over two or more operands (Salesforce forbids mixing them unparenthesised)."""

    op: str
    operands: tuple[Condition, ...]


Condition = Comparison | Not | Junction


@dataclass(frozen=True, slots=True)
class OrderItem:
    path: FieldPath
    descending: bool
    nulls_first: bool


@dataclass(frozen=True, slots=True)
class Select:
    """One SELECT: the top-level query, or a child subquery whose ``sobject`` is a relationship name."""

    items: tuple[FieldPath | Select, ...]
    is_count: bool
    sobject: str
    sobject_pos: int
    alias: str | None
    where: Condition | None
    order_by: tuple[OrderItem, ...]
    limit: int | None
    offset: int | None
    pos: int


@dataclass(frozen=True, slots=True)
class Query:
    """A parsed SOQL statement: immutable, safe to cache and to execute many times."""

    text: str
    select: Select

    @property
    def sobject(self) -> str:
        """The object name as written in FROM (resolved case-insensitively at execution)."""
        return self.select.sobject

    @property
    def is_count(self) -> bool:
        return self.select.is_count


# --------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # ident, string, number, date, datetime, time, op, punct, eof, error
    text: str
    pos: int
    upper: str = ""
    value: Any = None
    literal_wildcards: frozenset[int] = frozenset()


_TOKEN_RE = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<string>')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<time>\d{2}:\d{2}:\d{2}(?:\.\d+)?Z)
    | (?P<number>[+-]?(?:\d+(?:\.\d*)?|\.\d+))
    | (?P<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    | (?P<op><>|!=|<=|>=|=|<|>)
    | (?P<punct>[(),:])
    """,
    re.VERBOSE,
)
_STRING_BODY_RE = re.compile(r"[^'\\]*(?:\\.[^'\\]*)*", re.DOTALL)
_DATETIME_RE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):?(\d{2}))"
)
_TIME_RE = re.compile(r"(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


def _decode_string(text: str, start: int, body: str) -> tuple[str, frozenset[int]]:
    """Decode a quoted string body; returns the value and the offsets of escaped ``%`` / ``_``."""
    if "\\" not in body:
        return body, frozenset()
    out: list[str] = []
    literal: set[int] = set()
    i = 0
    while i < len(body):
        ch = body[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
        elif nxt in "%_":
            literal.add(len(out))
            out.append(nxt)
        else:
            raise error_at(
                "MALFORMED_QUERY",
                text,
                start,
                f"Invalid string literal '{body}'. Illegal character sequence '\\{nxt}' in string literal.",
            )
        i += 2
    return "".join(out), frozenset(literal)


def _fraction_to_micro(fraction: str | None) -> int:
    return int((fraction or "0")[:6].ljust(6, "0"))


def tokenize(text: str) -> list[Token]:
    """Split SOQL text into tokens (with offsets).

    The list ends with an ``eof`` token, or with an ``error`` token (its value the ``SoqlError``)
    where lexing failed: the parser raises it when it gets there, so an earlier syntax error is
    reported first, as Salesforce does.
    """
    tokens: list[Token] = []
    pos = 0
    end = len(text)
    match = _TOKEN_RE.match
    while pos < end:
        m = match(text, pos)
        try:
            if m is None:
                raise error_at("MALFORMED_QUERY", text, pos, f"unexpected token: '{text[pos]}'")
            if m.lastgroup == "ws":
                pos = m.end()
                continue
            token, pos = _read_token(text, pos, m)
        except SoqlError as problem:
            tokens.append(Token("error", text[pos], pos, value=problem))
            return tokens
        tokens.append(token)
    tokens.append(Token("eof", "", end))
    return tokens


def _read_token(text: str, pos: int, m: re.Match[str]) -> tuple[Token, int]:
    """The token ``m`` matched at ``pos`` and the offset after it."""
    kind = m.lastgroup or ""
    if kind == "string":
        body_match = _STRING_BODY_RE.match(text, pos + 1)
        body_end = body_match.end() if body_match else pos + 1
        if body_end >= len(text) or text[body_end] != "'":
            raise error_at(
                "MALFORMED_QUERY", text, pos, "unexpected token: <EOF> (unterminated string literal)"
            )
        body = text[pos + 1 : body_end]
        value, literal = _decode_string(text, pos, body)
        return Token(
            "string", text[pos : body_end + 1], pos, value=value, literal_wildcards=literal
        ), body_end + 1
    raw = m.group()
    if kind == "ident":
        return Token("ident", raw, pos, upper=raw.upper()), m.end()
    if kind == "number":
        return Token("number", raw, pos, value=Decimal(raw)), m.end()
    if kind == "date":
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            raise error_at("MALFORMED_QUERY", text, pos, f"invalid date: {raw}") from None
        return Token("date", raw, pos, value=day), m.end()
    if kind == "datetime":
        return Token("datetime", raw, pos, value=_parse_datetime(text, pos, raw)), m.end()
    if kind == "time":
        tm = _TIME_RE.fullmatch(raw)
        try:
            assert tm is not None
            clock = time(int(tm[1]), int(tm[2]), int(tm[3]), _fraction_to_micro(tm[4]))
        except ValueError:
            raise error_at("MALFORMED_QUERY", text, pos, f"invalid time: {raw}") from None
        return Token("time", raw, pos, value=clock), m.end()
    return Token(kind, raw, pos), m.end()  # op, punct


def _parse_datetime(text: str, pos: int, raw: str) -> datetime:
    m = _DATETIME_RE.fullmatch(raw)
    try:
        assert m is not None
        if m[8]:
            tz: timezone = UTC
        else:
            offset = timedelta(hours=int(m[10]), minutes=int(m[11]))
            tz = timezone(-offset if m[9] == "-" else offset)
        local = datetime(
            int(m[1]),
            int(m[2]),
            int(m[3]),
            int(m[4]),
            int(m[5]),
            int(m[6]),
            _fraction_to_micro(m[7]),
            tzinfo=tz,
        )
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        raise error_at("MALFORMED_QUERY", text, pos, f"invalid dateTime: {raw}") from None


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------

#: Words that cannot name a field, an object or an alias.
_RESERVED = frozenset(
    {
        "AND", "ASC", "DESC", "EXCLUDES", "FIRST", "FROM", "GROUP", "HAVING", "IN", "INCLUDES", "LAST",
        "LIKE", "LIMIT", "NOT", "NULL", "NULLS", "OR", "SELECT", "WHERE", "WITH", "ORDER", "BY", "OFFSET",
        "TRUE", "FALSE", "FOR", "USING", "UPDATE", "TYPEOF", "ALL", "ROLLUP", "CUBE", "END", "WHEN",
        "THEN", "ELSE",
    }
)  # fmt: skip
#: Clauses Salesforce has and this subset refuses (never silently ignored).
_UNSUPPORTED_CLAUSES = {
    "WITH": "WITH",
    "GROUP": "GROUP BY",
    "HAVING": "HAVING",
    "USING": "USING SCOPE",
    "FOR": "FOR VIEW / FOR REFERENCE / FOR UPDATE",
    "UPDATE": "UPDATE TRACKING / UPDATE VIEWSTAT",
    "ALL": "ALL ROWS",
}
_COMPARISON_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})


def _unsupported(what: str) -> str:
    return f"{what} is not supported by this Salesforce org's query engine"


class _Parser:
    def __init__(self, text: str, tokens: list[Token]) -> None:
        self.text = text
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    # -- token helpers ---------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        token = self.tokens[min(self.index + ahead, len(self.tokens) - 1)]
        if token.kind == "error":
            raise token.value
        return token

    def advance(self) -> Token:
        token = self.peek()
        if token.kind != "eof":
            self.index += 1
        return token

    def is_keyword(self, word: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "ident" and token.upper == word

    def is_punct(self, punct: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == "punct" and token.text == punct

    def error(self, token: Token | int, description: str, code: str = "MALFORMED_QUERY") -> SoqlError:
        pos = token if isinstance(token, int) else token.pos
        return error_at(code, self.text, pos, description)

    def unexpected(self, token: Token) -> SoqlError:
        if token.kind == "eof":
            return self.error(token, "unexpected token: <EOF>")
        if token.kind == "punct" and token.text == ":":
            return self.error(token, "Bind variables only allowed in Apex code")
        return self.error(token, f"unexpected token: '{token.text}'")

    def expect_keyword(self, word: str) -> Token:
        if not self.is_keyword(word):
            raise self.unexpected(self.peek())
        return self.advance()

    def expect_punct(self, punct: str) -> Token:
        if not self.is_punct(punct):
            raise self.unexpected(self.peek())
        return self.advance()

    def expect_name(self) -> Token:
        token = self.peek()
        if token.kind != "ident" or token.upper in _RESERVED:
            raise self.unexpected(token)
        return self.advance()

    def reject_unsupported_clause(self) -> None:
        token = self.peek()
        if token.kind == "ident" and token.upper in _UNSUPPORTED_CLAUSES:
            raise self.error(token, _unsupported(_UNSUPPORTED_CLAUSES[token.upper]))

    def integer(self, what: str) -> tuple[int, Token]:
        token = self.peek()
        if token.kind != "number" or not token.text.isdigit():
            raise self.unexpected(token)
        value = int(token.text)
        if value > MAX_INT32:
            raise self.error(
                token, f"numeric value out of range: {token.text} ({what} must be at most {MAX_INT32})"
            )
        self.advance()
        return value, token

    # -- grammar -----------------------------------------------------------------------------

    def query(self) -> Query:
        select = self.select(nested=False)
        token = self.peek()
        if token.kind != "eof":
            self.reject_unsupported_clause()
            raise self.unexpected(token)
        return Query(self.text, select)

    def select(self, nested: bool) -> Select:
        start = self.expect_keyword("SELECT")
        items, is_count = self.select_list(nested)
        self.expect_keyword("FROM")
        sobject = self.expect_name()
        if "." in sobject.text:
            raise self.unexpected(sobject)
        alias: str | None = None
        token = self.peek()
        if token.kind == "ident" and token.upper not in _RESERVED and "." not in token.text:
            alias = self.advance().text
        self.reject_unsupported_clause()
        where: Condition | None = None
        if self.is_keyword("WHERE"):
            self.advance()
            where = self.condition()
        self.reject_unsupported_clause()
        order_by: tuple[OrderItem, ...] = ()
        if self.is_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            order_by = self.order_by()
        self.reject_unsupported_clause()
        limit: int | None = None
        if self.is_keyword("LIMIT"):
            self.advance()
            limit, _ = self.integer("LIMIT")
        offset: int | None = None
        if self.is_keyword("OFFSET"):
            offset_token = self.advance()
            if nested:
                raise self.error(offset_token, _unsupported("OFFSET in a subquery"))
            offset, number = self.integer("OFFSET")
            if offset > MAX_OFFSET:
                raise self.error(
                    number, f"Maximum SOQL offset allowed is {MAX_OFFSET}", code="NUMBER_OUTSIDE_VALID_RANGE"
                )
        self.reject_unsupported_clause()
        return Select(
            items=items,
            is_count=is_count,
            sobject=sobject.text,
            sobject_pos=sobject.pos,
            alias=alias,
            where=where,
            order_by=order_by,
            limit=limit,
            offset=offset,
            pos=start.pos,
        )

    def select_list(self, nested: bool) -> tuple[tuple[FieldPath | Select, ...], bool]:
        items: list[FieldPath | Select] = []
        count_token: Token | None = None
        while True:
            token = self.peek()
            if count_token is not None:
                raise self.error(token, "COUNT() cannot be combined with other fields in the SELECT list")
            if token.kind == "punct" and token.text == "(":
                if nested:
                    raise self.error(token, _unsupported("a subquery nested in a subquery"))
                self.advance()
                if not self.is_keyword("SELECT"):
                    raise self.unexpected(self.peek())
                items.append(self.select(nested=True))
                self.expect_punct(")")
            elif token.kind == "ident" and self.is_punct("(", 1):
                if token.upper == "COUNT" and self.is_punct(")", 2):
                    if nested:
                        raise self.error(token, _unsupported("COUNT() in a subquery"))
                    if items:
                        raise self.error(
                            token, "COUNT() cannot be combined with other fields in the SELECT list"
                        )
                    count_token = token
                    self.index += 3
                else:
                    raise self.error(token, _unsupported(f"the function {token.text}() in the SELECT list"))
            elif token.kind == "ident" and token.upper == "TYPEOF":
                raise self.error(token, _unsupported("TYPEOF"))
            else:
                name = self.expect_name()
                items.append(self.path(name))
            if not self.is_punct(","):
                break
            self.advance()
        return tuple(items), count_token is not None

    def path(self, token: Token) -> FieldPath:
        return FieldPath(tuple(token.text.split(".")), token.text, token.pos)

    def order_by(self) -> tuple[OrderItem, ...]:
        items: list[OrderItem] = []
        while True:
            token = self.peek()
            if token.kind == "ident" and self.is_punct("(", 1):
                raise self.error(token, _unsupported(f"the function {token.text}() in ORDER BY"))
            path = self.path(self.expect_name())
            descending = False
            if self.is_keyword("ASC") or self.is_keyword("DESC"):
                descending = self.advance().upper == "DESC"
            # Salesforce: "By default, null values are sorted first" (ORDER BY reference,
            # sforce_api_calls_soql_select_orderby.htm) - in either direction.
            nulls_first = True
            if self.is_keyword("NULLS"):
                self.advance()
                if not (self.is_keyword("FIRST") or self.is_keyword("LAST")):
                    raise self.unexpected(self.peek())
                nulls_first = self.advance().upper == "FIRST"
            items.append(OrderItem(path, descending, nulls_first))
            if not self.is_punct(","):
                return tuple(items)
            self.advance()

    # -- WHERE -------------------------------------------------------------------------------

    def condition(self) -> Condition:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(self.peek(), f"conditions nest deeper than {MAX_NESTING} levels")
        operands = [self.term()]
        connective: str | None = None
        while self.is_keyword("AND") or self.is_keyword("OR"):
            token = self.peek()
            if connective is not None and token.upper != connective:
                # Salesforce refuses AND and OR at the same level without parentheses.
                raise self.unexpected(token)
            connective = self.advance().upper
            operands.append(self.term())
        self.depth -= 1
        if connective is None:
            return operands[0]
        return Junction(connective, tuple(operands))

    def term(self) -> Condition:
        token = self.peek()
        if token.kind == "ident" and token.upper == "NOT":
            self.advance()
            if self.is_keyword("NOT"):
                raise self.unexpected(self.peek())
            return Not(self.parenthesised() if self.is_punct("(") else self.comparison(), token.pos)
        if token.kind == "punct" and token.text == "(":
            return self.parenthesised()
        return self.comparison()

    def parenthesised(self) -> Condition:
        self.expect_punct("(")
        if self.is_keyword("SELECT"):
            raise self.unexpected(self.peek())
        inner = self.condition()
        self.expect_punct(")")
        return inner

    def comparison(self) -> Comparison:
        token = self.peek()
        if token.kind == "ident" and self.is_punct("(", 1):
            raise self.error(token, _unsupported(f"the function {token.text}() in WHERE"))
        path = self.path(self.expect_name())
        op_token = self.peek()
        if op_token.kind == "op":
            if op_token.text == "<>":
                raise self.unexpected(op_token)
            self.advance()
            value = self.value()
            self.require_plain_string(value)
            return Comparison(path, op_token.text, (value,), op_token.pos)
        if op_token.kind != "ident":
            raise self.unexpected(op_token)
        word = op_token.upper
        if word == "LIKE":
            self.advance()
            value = self.value()
            return Comparison(path, "LIKE", (value,), op_token.pos)
        if word in ("INCLUDES", "EXCLUDES"):
            self.advance()
            values = self.value_list()
            for value in values:
                self.require_plain_string(value)
            return Comparison(path, word, values, op_token.pos)
        negated = False
        if word == "NOT":
            self.advance()
            negated = True
            if not self.is_keyword("IN"):
                raise self.unexpected(self.peek())
        if self.is_keyword("IN"):
            self.advance()
            values = self.value_list()
            for value in values:
                self.require_plain_string(value)
            return Comparison(path, "NOT_IN" if negated else "IN", values, op_token.pos)
        raise self.unexpected(op_token)

    def require_plain_string(self, value: Value) -> None:
        if value.literal_wildcards:
            raise self.error(value.pos, "the escape sequences \\% and \\_ are only valid in a LIKE pattern")

    def value_list(self) -> tuple[Value, ...]:
        open_paren = self.peek()
        self.expect_punct("(")
        if self.is_keyword("SELECT"):
            raise self.error(open_paren, _unsupported("a semi-join or anti-join subquery"))
        values = [self.value()]
        while self.is_punct(","):
            self.advance()
            values.append(self.value())
        self.expect_punct(")")
        return tuple(values)

    def value(self) -> Value:
        token = self.peek()
        kind = token.kind
        if kind in ("string", "number", "date", "datetime", "time"):
            self.advance()
            return Value(kind, token.value, token.text, token.pos, literal_wildcards=token.literal_wildcards)
        if kind == "ident":
            word = token.upper
            if word in ("TRUE", "FALSE"):
                self.advance()
                return Value("boolean", word == "TRUE", token.text, token.pos)
            if word == "NULL":
                self.advance()
                return Value("null", None, token.text, token.pos)
            if word in PLAIN_LITERALS:
                self.advance()
                return Value("relative", word, token.text, token.pos)
            if word in N_LITERALS:
                self.advance()
                self.expect_punct(":")
                n, number = self.integer(word)
                return Value(
                    "relative", word, self.text[token.pos : number.pos + len(number.text)], token.pos, n=n
                )
            if word.startswith(FISCAL_PREFIXES):
                raise self.error(token, _unsupported(f"the fiscal date literal {token.text}"))
            if self.is_punct("(", 1):
                raise self.error(token, _unsupported(f"the function {token.text}()"))
        raise self.unexpected(token)


def parse_text(text: str) -> Query:
    """Parse a SOQL statement (raises ``SoqlError``)."""
    if len(text) > MAX_QUERY_LENGTH:
        raise SoqlError("MALFORMED_QUERY", f"SOQL statements cannot exceed {MAX_QUERY_LENGTH} characters")
    parser = _Parser(text, tokenize(text))
    return parser.query()
