"""Bulk inserts on PostgreSQL as ONE statement: one array parameter per column (unnest),
or one JSON text parameter for all the rows (json_to_recordset)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from functools import lru_cache
from json.encoder import JSONEncoder, encode_basestring_ascii
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    DateTime,
    Insert,
    String,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeDecorator, TypeEngine

from shared.db.errors import is_unique_violation


def array_of(col_type: TypeEngine[Any]) -> ARRAY[Any]:
    """The PostgreSQL array type of a column's values (a TypeDecorator's own impl)."""
    if isinstance(col_type, TypeDecorator):
        impl = col_type.impl
        return ARRAY(impl if isinstance(impl, TypeEngine) else DateTime(timezone=True))
    return ARRAY(col_type)


_UNNEST: dict[tuple[Table, tuple[str, ...], bool, str | None], Insert] = {}


def unnest_insert(
    table: Table, cols: tuple[str, ...], *, ignore: bool, returning: str | None
) -> Insert:
    """`INSERT INTO t (cols) SELECT * FROM unnest($1::a[], $2::b[], ...)`: one statement,
    one array parameter per column (`u_<column>`), whatever the number of rows (built once,
    then cached). `ignore`: ON CONFLICT DO NOTHING; `returning`: a column of the new rows."""
    key = (table, cols, ignore, returning)
    stmt = _UNNEST.get(key)
    if stmt is None:
        arrays = [
            cast(bindparam(f"u_{c}", type_=array_of(table.c[c].type)), array_of(table.c[c].type))
            for c in cols
        ]
        source = func.unnest(*arrays).table_valued(*cols).render_derived()
        pg = pg_insert(table).from_select(list(cols), select(*source.c))
        stmt = pg.on_conflict_do_nothing() if ignore else pg
        if returning is not None:
            stmt = stmt.returning(table.c[returning])
        _UNNEST[key] = stmt
    return stmt


async def bulk_insert(
    session: AsyncSession,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    ignore: bool = False,
    returning: str | None = None,
) -> list[Any]:
    """Insert `rows` (the same keys each): on PostgreSQL as one unnest statement, on SQLite
    as an executemany. `ignore`: ON CONFLICT DO NOTHING; `returning`: a column of the new
    rows, returned (any order)."""
    if not rows:
        return []
    if session.get_bind().dialect.name == "sqlite":
        stmt = sqlite_insert(table).on_conflict_do_nothing() if ignore else insert(table)
        if returning is not None:
            stmt = stmt.returning(table.c[returning])
            return list((await session.execute(stmt, rows)).scalars().all())
        await session.execute(stmt, rows)
        return []
    cols = tuple(rows[0])
    params = {f"u_{c}": [r[c] for r in rows] for c in cols}
    stmt = unnest_insert(table, cols, ignore=ignore, returning=returning)
    result = await session.execute(stmt, params)
    return list(result.scalars().all()) if returning is not None else []


_UPSERT: dict[tuple[Table, tuple[str, ...], tuple[str, ...], tuple[str, ...], bool], Insert] = {}


def unnest_upsert(
    table: Table,
    cols: tuple[str, ...],
    *,
    update: tuple[str, ...],
    consts: tuple[str, ...] = (),
    literal: bool = False,
) -> Insert:
    """`unnest_insert` for upserts: an array per column of `cols` (`u_<column>`), and the
    columns of `consts` bound once (`c_<column>`, the same value in every row: asyncpg would
    encode an array of copies element by element, ~1.5 µs per timestamp). With `update`,
    `ON CONFLICT (primary key) DO UPDATE SET` those columns to the new row's values. One
    statement per batch (built once, cached). `literal`: each `u_<column>` is one array
    literal as text (`text_arrays`), cast to the column's array type by the server."""
    key = (table, cols, consts, update, literal)
    stmt = _UPSERT.get(key)
    if stmt is None:
        types = {c: array_of(table.c[c].type) for c in cols}
        arrays = [
            cast(bindparam(f"u_{c}", type_=Text() if literal else types[c]), types[c]) for c in cols
        ]
        source = func.unnest(*arrays).table_valued(*cols).render_derived()
        values: dict[str, Any] = {c: source.c[c] for c in cols}
        values |= {c: bindparam(f"c_{c}", type_=table.c[c].type) for c in consts}
        names = [c.name for c in table.columns if c.name in values]
        pg = pg_insert(table).from_select(names, select(*(values[c] for c in names)))
        stmt = pg
        if update:
            keys = [c.name for c in table.primary_key.columns]
            stmt = pg.on_conflict_do_update(
                index_elements=keys, set_={c: pg.excluded[c] for c in update}
            )
        _UPSERT[key] = stmt
    return stmt


def in_values(column: ColumnElement[Any], values: Iterable[Any], *, sqlite: bool) -> Any:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, one array parameter.

    SQLAlchemy renders an expanding IN anew at every execution, one bound parameter (and
    type cast) per value: for a consumer batch's 2,000 ids that cost more CPU than the
    query. SQLite has no arrays and keeps the IN list.
    """
    if sqlite:
        return column.in_(list(values))
    return column == any_(bindparam(None, list(values), type_=array_of(column.type)))


def in_param(column: ColumnElement[Any], name: str, *, sqlite: bool) -> Any:
    """`in_values` for a statement built once and executed with `{name: [values]}`: the
    same SQL (`column = ANY(:name)` on PostgreSQL, an expanding IN on SQLite), without
    building the statement and its cache key anew per batch (~100-160 µs of CPU each)."""
    if sqlite:
        return column.in_(bindparam(name, expanding=True))
    return column == any_(bindparam(name, type_=array_of(column.type)))


def in_literal(column: ColumnElement[Any], name: str, *, sqlite: bool) -> Any:
    """`in_param` whose PostgreSQL parameter is ONE array literal as text (`array_literal`),
    cast to the column's array type by the server: `column IN (SELECT unnest(CAST(:name
    AS TEXT)::t[]))`.
    asyncpg encodes an array parameter element by element (~0.3 µs of client CPU an id,
    against ~0.02 as a literal). SQLite: an expanding IN, executed with a list."""
    if sqlite:
        return column.in_(bindparam(name, expanding=True))
    # in a subquery, the literal is read once (`= ANY(CAST(...))` would read it again for
    # every row the scan meets: the cast is not constant-folded)
    values = func.unnest(cast(bindparam(name, type_=Text()), array_of(column.type)))
    return column.in_(select(values.column_valued()))


def in_literal_ids(ids: Iterable[str], *, sqlite: bool) -> list[str] | str:
    """The parameter of an `in_literal` lookup: a list on SQLite, one array literal text
    (`array_literal`) on PostgreSQL."""
    listed = list(ids)
    return listed if sqlite else array_literal(listed)


def array_literal(values: Sequence[str | None]) -> str:
    """A PostgreSQL array literal of strings (None: NULL), e.g. `{"a",null}`, to bind as
    text and cast by the server (`in_literal`). Written by orjson when every escape it
    writes is one the array syntax reads the same (a quote or a backslash), else (a
    control character) element by element."""
    text = orjson.dumps(values)
    if b"\\" not in text or b"\\" not in text.replace(b"\\\\", b"").replace(b'\\"', b""):
        return "{" + text[1:-1].decode() + "}"
    return "{" + ",".join("NULL" if v is None else _quoted_element(v) for v in values) + "}"


def _quoted_element(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


_PG = postgresql.dialect()  # type: ignore[no-untyped-call]
_JSON_TYPES = (str, int, bool, date, datetime)  # what orjson writes and PostgreSQL reads back


def _plain_sql_types(table: Table, cols: tuple[str, ...]) -> list[str] | None:
    """The PostgreSQL type of each column as the JSON and array-literal inserts declare it,
    or None when a column's values are not plain JSON (bytes, say). Strings are `TEXT`,
    not VARCHAR(n): the INSERT's assignment checks the length (a cast truncates)."""
    types = []
    for name in cols:
        value_type = array_of(table.c[name].type).item_type  # a TypeDecorator's own impl
        try:
            python_type = value_type.python_type
        except NotImplementedError:
            return None
        if not issubclass(python_type, _JSON_TYPES):
            return None
        types.append("TEXT" if python_type is str else value_type.compile(dialect=_PG))
    return types


@lru_cache(maxsize=256)
def json_insert_sql(
    table: Table,
    cols: tuple[str, ...],
    *,
    suffix: str = "",
    rows: str = "$1::json",
    as_text: tuple[str, ...] = (),
) -> str | None:
    """`INSERT INTO t (cols) SELECT cols FROM json_to_recordset($1::json) AS x(col type, ...)`
    followed by `suffix` (ON CONFLICT ..., RETURNING ...): the rows travel as ONE JSON text
    parameter (`json_rows`), for the driver connection (`rows`: the parameter as another
    statement writes it, e.g. `CAST(:rows AS JSON)` for SQLAlchemy's `text`). Columns of
    `as_text` travel as text and are cast to their own type by the server (a JSON column
    whose text the caller wrote). None when another column's values are not plain JSON
    (bytes, say): use `unnest_insert` then. The rows are inserted in their order.

    Against `unnest_insert` it spares the client the driver's per-element array encoding
    (~4.5 µs a ten-column row in asyncpg, ~0.8 µs as JSON; the server time is the same).
    """
    plain = _plain_sql_types(table, tuple(c for c in cols if c not in as_text))
    if plain is None:
        return None
    found = iter(plain)
    types = ["TEXT" if c in as_text else next(found) for c in cols]
    defs = [f"{_quote(name)} {sql_type}" for name, sql_type in zip(cols, types, strict=True)]
    selected = [
        f"CAST(x.{_quote(c)} AS {table.c[c].type.compile(dialect=_PG)})"
        if c in as_text
        else f"x.{_quote(c)}"
        for c in cols
    ]
    return (
        f"INSERT INTO {quoted_table(table)} ({', '.join(_quote(c) for c in cols)})"
        f" SELECT {', '.join(selected)}"
        f" FROM json_to_recordset({rows}) AS x({', '.join(defs)}) {suffix}"
    ).rstrip()


@lru_cache(maxsize=256)
def text_array_insert_sql(table: Table, cols: tuple[str, ...], *, suffix: str = "") -> str | None:
    """`INSERT INTO t (cols) SELECT * FROM unnest(CAST($1 AS TEXT)::a[], ...)` followed by
    `suffix`: one array literal per column, as text (`text_arrays`), for the driver
    connection. None when a column's values are not plain JSON: see `json_insert_sql`.

    The server reads an array literal for less than a JSON record set: a ten-column
    ledger row with three indexes cost it 9.1-9.6 µs inserted this way against 10.8-11.3
    from `json_insert_sql` (2,000-row batches); the client's cost is about the same.
    """
    types = _plain_sql_types(table, cols)
    if types is None:
        return None
    defs = [f"CAST(${n} AS TEXT)::{t}[]" for n, t in enumerate(types, start=1)]
    names = ", ".join(_quote(c) for c in cols)
    return (
        f"INSERT INTO {quoted_table(table)} ({names})"
        f" SELECT * FROM unnest({', '.join(defs)}) {suffix}"
    ).rstrip()


def text_arrays(rows: list[dict[str, Any]], cols: tuple[str, ...]) -> list[str] | None:
    """The parameters of a `text_array_insert_sql` statement: each column's values as an
    array literal, written by orjson (`["a",null,3]` -> `{"a",null,3}`; a naive datetime is
    taken as UTC), or None when a value needs an escape in JSON (a quote, a backslash, a
    control character), which the array syntax reads differently: use `json_rows` then.
    """
    out = []
    for col in cols:
        text = orjson.dumps([r[col] for r in rows], option=orjson.OPT_NAIVE_UTC)
        if b"\\" in text:
            return None
        out.append("{" + text[1:-1].decode() + "}")
    return out


def json_rows(rows: list[dict[str, Any]]) -> str:
    """The `$1` of a `json_insert_sql` statement (a naive datetime is taken as UTC)."""
    return orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC).decode()


def quoted_table(table: Table) -> str:
    """The table's name (with its schema, if any) quoted for PostgreSQL SQL text."""
    return str(_PG.identifier_preparer.format_table(table))


def _quote(name: str) -> str:
    return _PG.identifier_preparer.quote_identifier(name)


_JSON_DEFAULT = JSONEncoder().default
# json's C encoder (None on a Python without json's speedups); not in the type stubs
c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)


def _json_dumps(value: dict[str, Any]) -> str:
    """`json.dumps(value)`, the same text: the C encoder json.dumps itself builds for its
    default arguments (ASCII escapes, `", "` and `": "`, NaN allowed, circular check),
    called directly: json.dumps's Python layers (`JSONEncoder.encode`, `iterencode`) cost
    ~2 µs of a ~4.5 µs call for a timeline row's `data`."""
    encode = c_make_encoder(
        {}, _JSON_DEFAULT, encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return "".join(encode(value, 0))


def json_text_processor(dialect: Dialect, column: TypeEngine[Any]) -> Callable[[Any], Any] | None:
    """The bind processor of a JSON column for `dialect` (what the driver would be given
    for a value: the text SQLAlchemy writes, or None when the driver serialises it), for
    statements that carry a JSON column's values as text (`json_insert_sql`'s `as_text`).

    When that text is `json.dumps(value)` (no `json_serializer` configured on the engine),
    a dict is written by `_json_dumps`, the same text for less CPU; any other value goes
    through the column's own processor."""
    process = dialect.type_descriptor(column).bind_processor(dialect)
    if (
        process is None
        or c_make_encoder is None  # a Python without json's C speedups
        or getattr(dialect, "_json_serializer", None) not in (None, json.dumps)
        or String().bind_processor(dialect) is not None
    ):
        return process

    def text(value: Any) -> Any:
        return _json_dumps(value) if type(value) is dict else process(value)

    return text


async def driver_connection(session: AsyncSession) -> Any:
    """The asyncpg connection of the session's transaction (PostgreSQL), for statements
    sent to the driver itself. SQLAlchemy's asyncpg adapter begins the transaction lazily,
    at the session's first statement: when none ran yet, a trivial one is run first, so
    what follows is inside the transaction (a consumer batch has claimed its events)."""
    raw = await (await session.connection()).get_raw_connection()
    driver = raw.driver_connection
    if driver is not None and not driver.is_in_transaction():
        await session.execute(_BEGUN)
    return driver


_BEGUN = text("SELECT 1")


async def copy_new_rows(
    session: AsyncSession, table: Table, columns: tuple[str, ...], records: list[tuple[Any, ...]]
) -> bool:
    """PostgreSQL: COPY (binary) `records` (tuples of `columns`) into `table` inside a
    savepoint, on the session's transaction; True if copied, False when a row met a unique
    key already there (or twice in `records`): the savepoint is rolled back, nothing is
    written, and the caller inserts the rows its own way (an upsert, say).

    For rows that are nearly always new: COPY costs the server less than an INSERT reading
    array literals or a JSON record set, and much less than ON CONFLICT's speculative
    insertion; constraints, defaults and checks are the same as an INSERT's.
    """
    driver = await driver_connection(session)
    await driver.execute("SAVEPOINT copy_new_rows")
    try:
        await driver.copy_records_to_table(
            table.name, schema_name=table.schema, columns=columns, records=records
        )
    except Exception as exc:
        if not is_unique_violation(exc):
            raise
        await driver.execute("ROLLBACK TO SAVEPOINT copy_new_rows")
        await driver.execute("RELEASE SAVEPOINT copy_new_rows")
        return False
    await driver.execute("RELEASE SAVEPOINT copy_new_rows")
    return True
