"""Array literals bound as one text parameter: the same values as an array parameter."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, String, Table, Text, cast, literal, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import Database
from shared.db.bulk import array_literal, in_literal

AWKWARD = [
    "plain",
    "a,b",
    "{x}",
    "null",
    "NULL",
    " sp ",
    "",
    "Malmö ÅÄÖ",
    "semi'quote",
    'dq"uote',
    "back\\slash",
    '\\"both\\\\',
    "new\nline",
    "tab\tx",
    "bell\x07",
    "\\n",
]


def test_array_literal_is_written_by_orjson_unless_an_escape_reads_differently() -> None:
    assert array_literal(["a", None, 'q"', "b\\s"]) == '{"a",null,"q\\"","b\\\\s"}'
    assert array_literal([]) == "{}"
    # a control character: orjson writes \n, the array syntax would read "n"
    assert array_literal(["x\ny", None]) == '{"x\ny",NULL}'


@pytest.mark.postgres
async def test_array_literals_read_back_as_the_values_and_select_by_them(
    raw_database: Database, backend: str
) -> None:
    if backend != "postgresql":
        pytest.skip("array literals are read by PostgreSQL")
    values: list[str | None] = [*AWKWARD, None]
    table = Table("literal_ids", MetaData(), Column("id", String(64), primary_key=True))
    async with raw_database.engine.begin() as conn:
        await conn.run_sync(table.metadata.create_all)
    async with AsyncSession(raw_database.engine) as session, session.begin():
        stmt = select(table.c.id).where(in_literal(table.c.id, "p_ids", sqlite=False))
        read = await session.execute(
            select(cast(literal(array_literal(values), Text), ARRAY(Text)))
        )
        assert read.scalar_one() == values
        await session.execute(table.insert(), [{"id": v} for v in AWKWARD])
        found = await session.execute(stmt, {"p_ids": array_literal([*AWKWARD[::2], "absent"])})
        assert sorted(found.scalars()) == sorted(AWKWARD[::2])
