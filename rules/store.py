"""RulesStore: every SQL statement of the rules service. Flushes, never commits."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import fields as dataclass_fields
from datetime import date, datetime, timedelta
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    String,
    Table,
    bindparam,
    delete,
    func,
    literal,
    null,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Executable
from sqlalchemy.sql.elements import TextClause

from rules import models as m
from rules.engine import (
    Complaint,
    Deadline,
    LeaseState,
    LedgerEntry,
    LegalStep,
    Plan,
    Warning,
    Watermark,
)
from rules.engine.history import Cut, usable
from shared.db.bulk import (
    bulk_insert,
    copy_new_rows,
    json_insert_sql,
    json_rows,
    text_array_insert_sql,
    text_arrays,
)

CHUNK = 1000


def _chunks(items: Sequence[str], size: int = CHUNK) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _in(column: Any, ids: Sequence[str], sqlite: bool) -> Any:
    """`column IN ids`; on PostgreSQL one array parameter (no thousand binds to compile)."""
    if sqlite:
        return column.in_(ids)
    return column.in_(select(func.unnest(bindparam(None, list(ids), type_=ARRAY(String())))))


_UNNEST_IDS = "unnest(CAST(:ids AS VARCHAR[])) AS u(key)"


def _per_lease(table: str, columns: str, where: str = "", order: str = "") -> TextClause:
    """PostgreSQL: rows of `table` for each id of the `:ids` array, one index lookup per id.

    The LATERAL subquery (kept apart by OFFSET 0) makes the plan an index scan per lease
    right after a burst of inserts, before autovacuum has analyzed the table (`lease_id IN
    (...)` was planned as a sequential scan then); a table analyzed while empty needs
    `_PG_LOOKUPS` as well.
    """
    sql = (
        f"SELECT x.* FROM {_UNNEST_IDS}"
        f" CROSS JOIN LATERAL (SELECT {columns} FROM {table}"
        f" WHERE {table}.lease_id = u.key {where} OFFSET 0) AS x {order}"
    )
    return text(sql).bindparams(bindparam("ids", type_=ARRAY(String())))


_LEASES = "lease_id, org_id, monthly_rent_ore, ended_on"
_ENTRIES = (
    "lease_id, entry_id, kind, amount_ore, booked_on, period, due_date, invoice_id, payment_id, id,"
    " known_at"
)
_PG_LEASES = _per_lease("leases", _LEASES)
_PG_ENTRIES = _per_lease("ledger_entries", _ENTRIES, order="ORDER BY x.id")
_PG_EMITTED = _per_lease("emitted_signals", "lease_id, signal_id")
_PG_OPEN_DEADLINES = _per_lease("deadlines", "lease_id, id, kind, ref, stage, due_at", "AND open")
_PG_DROP_DEADLINES_SQL = "DELETE FROM deadlines WHERE id = ANY(CAST($1 AS BIGINT[])) AND open"

# an open deadline as stored: (id, kind, ref, stage, due_at)
StoredDeadline = tuple[int, str, str, str, datetime]

# The driver statements take their lease ids as ONE JSON text (`_json_ids`): asyncpg encodes
# an array parameter element by element (~0.33 µs of client CPU an id, ~0.04 as JSON).
_JSON_IDS = "json_array_elements_text(CAST($1 AS JSON)) AS u(key)"


def _json_ids(ids: Iterable[str]) -> str:
    return orjson.dumps(list(ids)).decode()


# PostgreSQL: everything `evaluate_leases` reads per lease except the ledger entries, in one
# round trip: rows (kind, lease_id, a, b, c, d, t, n, s, e, m); see `_side_rows` for the
# meaning. A lease's row carries its settled history's cut (s, b, e: `Cut`) and how many
# entries are booked before it now (m: an index range count, no entry read).
_V, _D, _T, _N = (
    "CAST(NULL AS VARCHAR)",
    "CAST(NULL AS DATE)",
    "CAST(NULL AS TIMESTAMPTZ)",
    ("CAST(NULL AS BIGINT)"),
)
_NO_CUT = f", {_D}, {_N}, {_N}"
_COUNTED = (
    "CASE WHEN settled_before IS NULL THEN NULL ELSE (SELECT count(*) FROM ledger_entries AS x"
    " WHERE x.lease_id = leases.lease_id AND x.booked_on < leases.settled_before) END"
)
_SIDE_BRANCHES = (
    (
        "l",
        "leases",
        f"org_id, settled_period, {_V}, ended_on, {_T}, monthly_rent_ore,"
        f" settled_before, CAST(settled_entries AS BIGINT), {_COUNTED}",
        "",
    ),
    ("e", "emitted_signals", f"signal_id, {_V}, {_V}, {_D}, {_T}, {_N}{_NO_CUT}", ""),
    ("o", "deadlines", "kind, ref, stage, " + f"{_D}, due_at, id{_NO_CUT}", "AND open"),
    (
        "c",
        "complaints",
        f"complaint_id, category, resolution, occurred_on, {_T}, {_N}{_NO_CUT}",
        "",
    ),
    ("w", "warnings", f"warning_id, category, {_V}, issued_on, {_T}, {_N}{_NO_CUT}", ""),
    ("s", "legal_steps", f"step_id, step, {_V}, step_date, {_T}, {_N}{_NO_CUT}", ""),
    (
        "p",
        "plans",
        f"plan_id, {_V}, CAST(installments AS VARCHAR), agreed_on, {_T}, {_N}{_NO_CUT}",
        "",
    ),
)
# plain SQL for the driver (asyncpg) connection: `load_for_evaluation` fetches these rows
# itself, without SQLAlchemy's per-row result processing (the columns need no conversion)
_PG_SIDE_SQL = (
    f"SELECT x.* FROM {_JSON_IDS} CROSS JOIN LATERAL ("
    + " UNION ALL ".join(
        f"SELECT CAST('{k}' AS VARCHAR) AS k, {t}.lease_id, {cols} FROM {t}"
        f" WHERE {t}.lease_id = u.key {where}"
        for k, t, cols, where in _SIDE_BRANCHES
    )
    + " OFFSET 0) AS x"
)
# no ORDER BY: sorting a chunk's rows by id cost the server ~1.5 µs a lease (1,000-lease
# chunks of 5 entries each); `_entry_rows` puts each lease's few rows in id order instead
_PG_ENTRIES_SQL = str(_per_lease("ledger_entries", _ENTRIES)).replace(_UNNEST_IDS, _JSON_IDS)
assert _JSON_IDS in _PG_ENTRIES_SQL
# the same per lease booked from a day on ($1: [[lease id, day or null], ...]): one range of
# the (lease_id, booked_on) index, the settled history before the day not read
_PG_ENTRIES_SINCE_SQL = (
    "SELECT x.* FROM json_array_elements(CAST($1 AS JSON)) AS u(pair) CROSS JOIN LATERAL"
    f" (SELECT {_ENTRIES} FROM ledger_entries WHERE ledger_entries.lease_id = u.pair->>0"
    " AND ledger_entries.booked_on >= COALESCE(CAST(u.pair->>1 AS DATE), '-infinity')"
    " OFFSET 0) AS x"
)
_PG_SAVE_CUTS = (
    "UPDATE leases SET settled_before = v.before, settled_entries = v.entries,"
    " settled_period = v.period FROM json_to_recordset(CAST($1 AS JSON))"
    " AS v(key VARCHAR, before DATE, entries INTEGER, period VARCHAR)"
    " WHERE leases.lease_id = v.key"
)

# the unique constraint only: an entry's id (a sequence) is never there already
_ENTRY_CONFLICT = "ON CONFLICT (kind, entry_id) DO NOTHING"

# Per-lease lookups of a 500-1,000 lease chunk are estimated above jit_above_cost once a
# table has a few rows per lease; compiling then took ~5 ms for a query that runs in 3 ms.
# And once autovacuum has analyzed a table while it was empty or small (`deadlines`,
# `emitted_signals` after an onboarding), the planner scans it whole for every lease of
# the chunk (OFFSET 0 does not stop that) until the next analyze: the month-end bench
# after a VACUUM (ANALYZE) spent ~180 µs of server time a lease in the lookups below
# (bench/RESULTS.md, pass 7). Every per-lease lookup has an index on lease_id: sequential
# scans are priced out. Both for the rest of the transaction only (the consumer batch or
# the sweep chunk).
_PG_LOOKUPS = text(
    "SELECT set_config('jit', 'off', true), set_config('enable_seqscan', 'off', true)"
)

# built once: the sweep asks every interval, from every worker
_DUE_LEASES = (
    select(m.deadlines.c.lease_id)
    .where(m.deadlines.c.open, m.deadlines.c.due_at <= bindparam("now"))
    .order_by(m.deadlines.c.due_at)  # exactly the partial index: no sort of every due row
    .limit(bindparam("limit"))
)
_DUE_LEASES_PG = _DUE_LEASES.with_for_update(skip_locked=True)
_PG_MISSING_LEASES = (
    f"SELECT u.key FROM {_JSON_IDS}"
    # OFFSET 0: one index probe per id, never a hash anti join over the whole table
    " WHERE NOT EXISTS (SELECT 1 FROM leases WHERE leases.lease_id = u.key OFFSET 0)"
)
_PG_WATERMARKS = (
    "SELECT org_id, booked_through, received_at FROM org_watermarks"
    " WHERE org_id = ANY(CAST($1 AS VARCHAR[]))"
)
_PG_COPIES_SEEN = "SELECT count(*) FROM watermark_copies WHERE org_id = $1 AND booked_through = $2"
_UPSERT_LEASE = (
    "ON CONFLICT (lease_id) DO UPDATE SET org_id = excluded.org_id,"
    " monthly_rent_ore = excluded.monthly_rent_ore, due_day = excluded.due_day"
)

# per lease with a stored cut: (that cut, the cut its entries were read after or None: all)
Cuts = dict[str, tuple[Cut, Cut | None]]
# what `RulesStore.load_for_evaluation` returns: states, emitted signal ids, open deadlines
# and the leases' cuts of settled history
EvaluationInput = tuple[
    dict[str, LeaseState], dict[str, frozenset[str]], dict[str, list[StoredDeadline]], Cuts
]


class RulesStore:
    """Reads and writes the rules service's tables inside the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        dialect = session.bind.dialect.name if session.bind is not None else "postgresql"
        self._insert = sqlite_insert if dialect == "sqlite" else pg_insert
        self._sqlite = dialect == "sqlite"
        self._pg: Any = None  # the asyncpg connection, once `_driver` started the transaction
        # cuts of settled history are stored and used on PostgreSQL (`load_for_evaluation`)
        self.keeps_cuts = not self._sqlite

    async def _driver(self) -> Any:
        """The transaction's asyncpg connection (PostgreSQL), for statements whose rows or
        parameters need no SQLAlchemy processing.

        The first call goes through the session once (`_PG_LOOKUPS`): SQLAlchemy's
        asyncpg adapter begins the transaction lazily, at its first statement, so a
        statement sent to the driver before any would run outside the transaction.
        """
        if self._pg is None:
            await self.session.execute(_PG_LOOKUPS)
            raw = await (await self.session.connection()).get_raw_connection()
            self._pg = raw.driver_connection
        return self._pg

    async def _insert_new(self, table: Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self._bulk_insert(table, rows, ignore=True)

    async def _bulk_insert(
        self,
        table: Table,
        rows: list[dict[str, Any]],
        *,
        ignore: bool = False,
        returning: str | None = None,
    ) -> list[Any]:
        """Insert `rows` (same keys each); on PostgreSQL as one JSON-text statement where
        the columns allow (`json_insert_sql`), else `shared.db.bulk.bulk_insert` (unnest on
        PostgreSQL, executemany on SQLite).

        `ignore`: ON CONFLICT DO NOTHING; `returning`: the column to return of new rows.
        """
        if not self._sqlite and rows:
            suffix = ("ON CONFLICT DO NOTHING" if ignore else "") + (
                f" RETURNING {returning}" if returning is not None else ""
            )
            statement = self._pg_insert(table, rows, suffix)
            if statement is not None:
                driver = await self._driver()
                if returning is None:
                    await driver.execute(*statement)
                    return []
                return [r[0] for r in await driver.fetch(*statement)]
        return await bulk_insert(self.session, table, rows, ignore=ignore, returning=returning)

    def _pg_insert(
        self, table: Table, rows: list[dict[str, Any]], suffix: str
    ) -> tuple[str, ...] | None:
        """SQL and parameters of a one-statement insert of `rows` (same keys each): one
        array literal per column (`text_arrays`), or one JSON text when a value needs an
        escape; None when a column's values are not plain JSON."""
        cols = tuple(rows[0])
        sql = text_array_insert_sql(table, cols, suffix=suffix)
        if sql is None:
            return None
        arrays = text_arrays(rows, cols)
        if arrays is not None:
            return (sql, *arrays)
        sql = json_insert_sql(table, cols, suffix=suffix)
        return None if sql is None else (sql, json_rows(rows))

    async def upsert_leases(self, rows: list[dict[str, Any]]) -> set[str]:
        """Insert or update lease terms (a full snapshot wins); return the ids of the
        leases this inserted (new to the table, so nothing else of theirs is stored).

        Each lease once (DO UPDATE may not touch a row twice; the last snapshot wins, as
        it did row by row): first inserted where new (ON CONFLICT DO NOTHING RETURNING
        tells which), then the others upserted as before. A lease inserted meanwhile by
        another instance conflicts at the first statement and is updated by the second.
        """
        if not rows:
            return set()
        rows = list({r["lease_id"]: r for r in rows}.values())
        new = set(await self._bulk_insert(m.leases, rows, ignore=True, returning="lease_id"))
        rows = [r for r in rows if r["lease_id"] not in new]
        if not rows:
            return new
        if not self._sqlite:
            statement = self._pg_insert(m.leases, rows, _UPSERT_LEASE)
            assert statement is not None  # the columns are plain JSON
            await (await self._driver()).execute(*statement)
            return new
        stmt = self._insert(m.leases)
        stmt = stmt.on_conflict_do_update(
            index_elements=[m.leases.c.lease_id],
            set_={
                "org_id": stmt.excluded.org_id,
                "monthly_rent_ore": stmt.excluded.monthly_rent_ore,
                "due_day": stmt.excluded.due_day,
            },
        )
        await self.session.execute(stmt, rows)
        return new

    async def ensure_leases(self, rows: list[dict[str, Any]]) -> set[str]:
        """Create placeholder leases for events that arrive before their lease; return the
        ids of the placeholders inserted.

        On PostgreSQL the batch's lease ids are looked up first and only the missing ones
        inserted: nearly every event names a known lease, and a placeholder insert that
        conflicts costs the server twice the lookup (parsing the row, the conflict check).
        ON CONFLICT DO NOTHING still guards a lease created meanwhile by another instance
        (not returned: not inserted here).
        """
        if rows and not self._sqlite:
            ids = _json_ids([r["lease_id"] for r in rows])
            missing = {r[0] for r in await (await self._driver()).fetch(_PG_MISSING_LEASES, ids)}
            rows = [r for r in rows if r["lease_id"] in missing]
        if not rows:
            return set()
        return set(await self._bulk_insert(m.leases, rows, ignore=True, returning="lease_id"))

    async def end_lease(self, lease_id: str, ended_on: date) -> None:
        """Record the end of a lease."""
        await self.session.execute(
            update(m.leases).where(m.leases.c.lease_id == lease_id).values(ended_on=ended_on)
        )

    async def add_entries(self, rows: list[dict[str, Any]]) -> None:
        """Add ledger entries; an entry already there (same kind and id) is left alone.

        On PostgreSQL the rows are first copied in (COPY, binary) inside a savepoint:
        nearly every batch's entries are all new, and both ON CONFLICT's speculative
        insertion (a check of each unique index before the row, a second WAL record after
        it) and an INSERT reading the rows from array literals cost the server more (COPY:
        5.0 against 6.5-7.5 µs a row, 2,000-row batches). When one is there already (sent
        again under another event id, or twice in the batch), the copy fails, is rolled
        back to the savepoint, and the rows are inserted with ON CONFLICT (kind, entry_id)
        DO NOTHING: the same rows either way, in the same order (ids), the first of a
        batch's duplicates kept.
        """
        if not rows or self._sqlite:
            await self._insert_new(m.ledger_entries, rows)
            return
        cols = tuple(rows[0])
        driver = await self._driver()
        records = list(map(itemgetter(*cols), rows))
        if await copy_new_rows(self.session, m.ledger_entries, cols, records):
            return
        statement = self._pg_insert(m.ledger_entries, rows, _ENTRY_CONFLICT)
        assert statement is not None  # the columns are plain JSON
        await driver.execute(*statement)

    async def add_complaints(self, rows: list[dict[str, Any]]) -> None:
        """Add complaints (idempotent by complaint id)."""
        await self._insert_new(m.complaints, rows)

    async def resolve_complaint(self, complaint_id: str, resolution: str) -> None:
        """Record how a complaint was closed."""
        await self.session.execute(
            update(m.complaints)
            .where(m.complaints.c.complaint_id == complaint_id)
            .values(resolution=resolution)
        )

    async def add_warnings(self, rows: list[dict[str, Any]]) -> None:
        """Add warnings (idempotent by warning id)."""
        await self._insert_new(m.warnings, rows)

    async def add_legal_steps(self, rows: list[dict[str, Any]]) -> None:
        """Add legal steps (idempotent by step id)."""
        await self._insert_new(m.legal_steps, rows)

    async def add_plans(self, rows: list[dict[str, Any]]) -> None:
        """Add payment plans (idempotent by plan id)."""
        await self._insert_new(m.plans, rows)

    async def load_states(self, lease_ids: Sequence[str]) -> dict[str, LeaseState]:
        """Load the engine input of many leases with one query per table and chunk."""
        out: dict[str, LeaseState] = {}
        for chunk in _chunks(sorted(set(lease_ids))):
            out.update(await self._load_chunk(chunk))
        return out

    async def load_for_evaluation(
        self, lease_ids: Sequence[str], today: date | None = None
    ) -> EvaluationInput:
        """States, emitted signal ids and open deadlines of `lease_ids` (existing leases),
        and their cuts of settled history.

        On PostgreSQL two round trips per chunk: the ledger entries, and one query for the
        lease rows, emitted signals, open deadlines, complaints, warnings, steps and plans.
        With `today` (the evaluation day), a lease whose stored cut is `usable` gets only
        its entries booked from the cut on (`rules.engine.history`; a third round trip
        reads the whole ledger of those whose cut turns out not to be). SQLite reads every
        entry and stores no cut.
        """
        if self._sqlite:
            states = await self.load_states(lease_ids)
            emitted = await self.emitted_ids(lease_ids)
            return states, emitted, await self.open_deadlines(list(states)), {}
        out: EvaluationInput = ({}, {}, {}, {})
        driver = await self._driver()
        for chunk in _chunks(sorted(set(lease_ids))):
            ids = _json_ids(chunk)
            side = await driver.fetch(_PG_SIDE_SQL, ids)
            leases, emitted, open_, stored = _side_rows(side)
            if leases:
                entries, used = await self._entries(driver, chunk, leases, stored, today)
                for lease_id, (cut, _) in stored.items():
                    out[3][lease_id] = (cut, used.get(lease_id))
                for lease_id in chunk:  # sorted, as load_states returns them
                    f = leases.get(lease_id)
                    if f is not None:  # positional: a keyword call cost ~0.4 µs more a lease
                        have = entries.get(lease_id)
                        out[0][lease_id] = LeaseState(
                            lease_id,
                            f[0],
                            f[1],
                            tuple(have) if have else _NONE,
                            f[2],
                            f[3],
                            f[4],
                            f[5],
                            f[6],
                        )
            out[1].update(emitted)
            out[2].update(open_)
        return out

    async def _entries(
        self,
        driver: Any,
        chunk: Sequence[str],
        leases: dict[str, _Fields],
        stored: dict[str, tuple[Cut, int]],
        today: date | None,
    ) -> tuple[dict[str, list[LedgerEntry]], dict[str, Cut]]:
        """The ledger entries of `chunk`'s leases, and the cuts they were read after: only
        the entries booked from a lease's stored cut on where that cut is `usable`, all
        where it is not (or no `today` was given)."""
        since: dict[str, str | None] = dict.fromkeys(chunk)
        if today is not None:
            for lease_id, (cut, counted) in stored.items():
                f = leases.get(lease_id)  # f[5]: its plans
                if f is not None and usable(cut, counted, (), bool(f[5]), today):
                    since[lease_id] = cut.before.isoformat()
        if today is None or not any(since.values()):
            return _entry_rows(await driver.fetch(_PG_ENTRIES_SQL, _json_ids(chunk))), {}
        pairs = orjson.dumps(list(since.items())).decode()
        entries = _entry_rows(await driver.fetch(_PG_ENTRIES_SINCE_SQL, pairs))
        used: dict[str, Cut] = {}
        again = []
        for lease_id, day in since.items():
            if day is not None:
                cut = stored[lease_id][0]  # its count and plans checked above: now its entries
                if usable(cut, cut.entries, entries.get(lease_id, ()), False, today):
                    used[lease_id] = cut
                else:
                    again.append(lease_id)
        if again:  # a credit, a reversal or a charge of a settled month: read them whole
            entries.update(_entry_rows(await driver.fetch(_PG_ENTRIES_SQL, _json_ids(again))))
        return entries, used

    async def save_cuts(self, cuts: dict[str, Cut | None]) -> None:
        """Store the leases' cuts of settled history (None: none); PostgreSQL only."""
        if not cuts or self._sqlite:
            return
        rows = [
            {"key": k, "before": c.before, "entries": c.entries, "period": c.period}
            if c is not None
            else {"key": k, "before": None, "entries": None, "period": None}
            for k, c in cuts.items()
        ]
        await (await self._driver()).execute(_PG_SAVE_CUTS, orjson.dumps(rows).decode())

    async def _extras(self, ids: Sequence[str]) -> dict[str, list[Any]]:
        """Complaints, warnings, legal steps and plans of `ids` in one round trip."""
        c, w, s, p = m.complaints.c, m.warnings.c, m.legal_steps.c, m.plans.c
        query = union_all(
            select(
                c.lease_id,
                literal("c").label("x_kind"),
                c.complaint_id.label("x_id"),
                c.category.label("x_a"),
                c.occurred_on.label("x_d"),
                c.resolution.label("x_b"),
            ).where(_in(c.lease_id, ids, self._sqlite)),
            select(w.lease_id, literal("w"), w.warning_id, w.category, w.issued_on, null()).where(
                _in(w.lease_id, ids, self._sqlite)
            ),
            select(s.lease_id, literal("s"), s.step_id, s.step, s.step_date, null()).where(
                _in(s.lease_id, ids, self._sqlite)
            ),
            select(p.lease_id, literal("p"), p.plan_id, null(), p.agreed_on, p.installments).where(
                _in(p.lease_id, ids, self._sqlite)
            ),
        )
        grouped: dict[str, list[Any]] = defaultdict(list)
        for row in (await self.session.execute(query)).all():
            grouped[row.lease_id].append(row)
        return grouped

    async def _load_chunk(self, ids: Sequence[str]) -> dict[str, LeaseState]:
        lc, ec = m.leases.c, m.ledger_entries.c
        if self._sqlite:
            lease_query: Executable = select(
                lc.lease_id, lc.org_id, lc.monthly_rent_ore, lc.ended_on
            ).where(lc.lease_id.in_(ids))
            entry_query: Executable = (
                select(ec.lease_id, *(ec[name] for name in _ENTRY_COLUMNS))
                .where(ec.lease_id.in_(ids))
                .order_by(ec.id)
            )
        else:
            lease_query, entry_query = _PG_LEASES, _PG_ENTRIES
        params = None if self._sqlite else {"ids": list(ids)}
        result = await self.session.execute(lease_query, params)
        leases = {r[0]: r for r in result.all()}
        if not leases:
            return {}
        entries: dict[str, list[LedgerEntry]] = defaultdict(list)
        result = await self.session.execute(entry_query, params)
        rows: Sequence[Any] = result.all()
        for lease_id, *fields in rows:
            entries[lease_id].append(LedgerEntry(*fields))
        extras = await self._extras(ids)
        out = {}
        for lease_id in ids:
            lease = leases.get(lease_id)
            if lease is None:
                continue
            more = extras.get(lease_id)
            out[lease_id] = LeaseState(
                lease_id=lease_id,
                org_id=lease[1],
                monthly_rent_ore=lease[2],
                ended_on=lease[3],
                entries=tuple(entries.get(lease_id, ())),
                **(_extra_fields(more) if more else {}),
            )
        return out

    async def emitted_ids(self, lease_ids: Sequence[str]) -> dict[str, frozenset[str]]:
        """Return the signal ids already emitted, per lease."""
        grouped: dict[str, set[str]] = defaultdict(set)
        t = m.emitted_signals
        for chunk in _chunks(sorted(set(lease_ids))):
            query: Executable = (
                select(t.c.lease_id, t.c.signal_id).where(t.c.lease_id.in_(chunk))
                if self._sqlite
                else _PG_EMITTED
            )
            params = None if self._sqlite else {"ids": list(chunk)}
            result = await self.session.execute(query, params)
            for lease_id, signal_id in result.all():
                grouped[lease_id].add(signal_id)
        return {lease_id: frozenset(ids) for lease_id, ids in grouped.items()}

    async def claim_signals(self, rows: list[dict[str, Any]]) -> set[str]:
        """Record signals as emitted; return the ids that were new (the ones to publish)."""
        if not rows:
            return set()
        return set(
            await self._bulk_insert(m.emitted_signals, rows, ignore=True, returning="signal_id")
        )

    async def open_deadlines(self, lease_ids: Sequence[str]) -> dict[str, list[StoredDeadline]]:
        """Return the open deadlines of `lease_ids` as (id, kind, ref, stage, due_at)."""
        t = m.deadlines
        out: dict[str, list[StoredDeadline]] = defaultdict(list)
        for chunk in _chunks(sorted(set(lease_ids))):
            if self._sqlite:
                cols = (t.c.lease_id, t.c.id, t.c.kind, t.c.ref, t.c.stage, t.c.due_at)
                query = select(*cols).where(t.c.lease_id.in_(chunk), t.c.open)
                result = await self.session.execute(query)
            else:
                result = await self.session.execute(_PG_OPEN_DEADLINES, {"ids": list(chunk)})
            for lease_id, *rest in result.all():
                out[lease_id].append(tuple(rest))
        return out

    async def replace_deadlines(
        self,
        lease_ids: Sequence[str],
        deadlines: dict[str, list[Deadline]],
        current: dict[str, list[StoredDeadline]],
    ) -> None:
        """Make the open deadlines of `lease_ids` be `deadlines`; `current`: open_deadlines().

        Rows that stay the same are left alone; only changed ones are deleted or inserted.
        """
        t = m.deadlines
        drop: list[int] = []
        rows = []
        for lease_id in lease_ids:
            stored = current.get(lease_id)
            old = {(k, r, s, due): id_ for id_, k, r, s, due in stored} if stored else {}
            for d in deadlines.get(lease_id, ()):
                if old.pop((d.kind, d.ref, d.stage, d.due_at), None) is None:
                    rows.append(
                        {
                            "lease_id": lease_id,
                            "kind": d.kind,
                            "ref": d.ref,
                            "stage": d.stage,
                            "due_at": d.due_at,
                            "open": True,
                        }
                    )
            drop += old.values()
        for start in range(0, len(drop), CHUNK):
            ids = drop[start : start + CHUNK]
            if self._sqlite:
                await self.session.execute(delete(t).where(t.c.id.in_(ids), t.c.open))
            else:
                await (await self._driver()).execute(_PG_DROP_DEADLINES_SQL, ids)
        if rows:
            await self._bulk_insert(t, rows)

    async def due_leases(self, now: datetime, *, limit: int) -> list[str]:
        """Return leases with an open deadline due at `now` (index on due_at where open).

        On PostgreSQL the rows are locked and locked ones skipped, so concurrent sweepers
        (tasks or instances) take disjoint chunks.
        """
        query = _DUE_LEASES if self._sqlite else _DUE_LEASES_PG
        result = await self.session.execute(query, {"now": now, "limit": limit})
        return list(dict.fromkeys(result.scalars().all()))

    async def list_deadlines(self, lease_id: str) -> list[Any]:
        """Return a lease's open deadlines, soonest first."""
        t = m.deadlines
        result = await self.session.execute(
            select(t).where(t.c.lease_id == lease_id, t.c.open).order_by(t.c.due_at)
        )
        return list(result)

    async def list_signals(self, lease_id: str) -> list[Any]:
        """Return the signals emitted for a lease, oldest first."""
        t = m.emitted_signals
        result = await self.session.execute(
            select(t).where(t.c.lease_id == lease_id).order_by(t.c.occurred_at, t.c.signal_id)
        )
        return list(result)

    async def lease_ids_with_entries(self, since: date, until: date) -> list[str]:
        """Return leases with any ledger entry booked in [since, until]."""
        t = m.ledger_entries
        result = await self.session.execute(
            select(t.c.lease_id)
            .where(t.c.booked_on >= since, t.c.booked_on <= until)
            .group_by(t.c.lease_id)
            .order_by(t.c.lease_id)
        )
        return list(result.scalars().all())

    async def watermarks(self, org_ids: Iterable[str]) -> dict[str, Watermark]:
        """Return the latest ledger watermark of each organisation that has sent one."""
        t = m.org_watermarks
        ids = sorted(set(org_ids))
        if not ids:
            return {}
        if not self._sqlite:
            rows = await (await self._driver()).fetch(_PG_WATERMARKS, ids)
            return {org: Watermark(through, at) for org, through, at in rows}
        result = await self.session.execute(
            select(t.c.org_id, t.c.booked_through, t.c.received_at).where(t.c.org_id.in_(ids))
        )
        return {org: Watermark(through, at) for org, through, at in result.all()}

    async def advance_watermark(
        self, org_id: str, booked_through: date, received_at: datetime, now: datetime
    ) -> list[str] | None:
        """Store a watermark unless it is older than the stored one (then return None).

        Return the org's leases with an open deadline within two days of `now`: the ones
        that may hold a stage for this watermark, for the caller to evaluate now.
        """
        t = m.org_watermarks
        stmt = self._insert(t).values(
            org_id=org_id, booked_through=booked_through, received_at=received_at
        )
        newer = (stmt.excluded.booked_through > t.c.booked_through) | (
            (stmt.excluded.booked_through == t.c.booked_through)
            & (stmt.excluded.received_at > t.c.received_at)
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[t.c.org_id],
            set_={"booked_through": stmt.excluded.booked_through, "received_at": received_at},
            where=newer,
        ).returning(t.c.org_id)
        if (await self.session.execute(upsert)).first() is None:
            return None
        d, lc = m.deadlines.c, m.leases.c
        held = (
            select(d.lease_id)
            .join(m.leases, lc.lease_id == d.lease_id)
            .where(d.open, d.due_at <= now + timedelta(days=2), lc.org_id == org_id)
            .group_by(d.lease_id)
        )
        return list((await self.session.execute(held)).scalars().all())

    async def make_due(self, lease_ids: Sequence[str], now: datetime) -> None:
        """Bring the open deadlines of `lease_ids` that are later than `now` forward to it:
        the sweep evaluates those leases next (a watermark released them)."""
        t = m.deadlines
        for chunk in _chunks(list(lease_ids)):
            await self.session.execute(
                update(t)
                .where(_in(t.c.lease_id, chunk, self._sqlite), t.c.open, t.c.due_at > now)
                .values(due_at=now)
            )

    async def add_watermark_copy(
        self, org_id: str, booked_through: date, partition: int, partitions: int, at: datetime
    ) -> bool:
        """Record one partition's copy of a watermark; True once every copy is in."""
        t = m.watermark_copies
        row = {
            "org_id": org_id,
            "booked_through": booked_through,
            "partition": partition,
            "partitions": partitions,
            "received_at": at,
        }
        await self._insert_new(t, [row])
        if not self._sqlite:  # a prepared statement of the driver: no SQL compiled per copy
            seen = await (await self._driver()).fetchval(_PG_COPIES_SEEN, org_id, booked_through)
            return int(seen) >= partitions
        result = await self.session.execute(
            select(func.count()).where(t.c.org_id == org_id, t.c.booked_through == booked_through)
        )
        return int(result.scalar_one()) >= partitions

    async def complete_watermarks(self) -> list[tuple[str, date, datetime]]:
        """Return watermarks whose copies are all in (two instances may each miss the last)."""
        t = m.watermark_copies
        query = (
            select(t.c.org_id, t.c.booked_through, func.max(t.c.received_at))
            .group_by(t.c.org_id, t.c.booked_through)
            .having(func.count() >= func.max(t.c.partitions))
        )
        return [(org, day, at) for org, day, at in (await self.session.execute(query)).all()]

    async def drop_watermark_copies(self, org_id: str, through: date) -> None:
        """Forget the copies of an organisation's watermarks up to `through` (applied)."""
        t = m.watermark_copies
        await self.session.execute(
            delete(t).where(t.c.org_id == org_id, t.c.booked_through <= through)
        )

    async def count(self, table: Table) -> int:
        """Return the number of rows of a table (for tests and the bench)."""
        return int(
            (await self.session.execute(select(func.count()).select_from(table))).scalar_one()
        )


# ledger_entries columns as `_load_chunk` unpacks them (`id` is LedgerEntry.seq)
_ENTRY_COLUMNS = (
    "entry_id",
    "kind",
    "amount_ore",
    "booked_on",
    "period",
    "due_date",
    "invoice_id",
    "payment_id",
    "id",
    "known_at",
)


def _extra_fields(more: list[Any]) -> dict[str, Any]:
    """Complaints, warnings, legal steps and plans of one lease from `_extras` rows."""
    return {
        "complaints": tuple(
            Complaint(r.x_id, r.x_a, _day(r.x_d), r.x_b) for r in more if r.x_kind == "c"
        ),
        "warnings": tuple(Warning(r.x_id, r.x_a, _day(r.x_d)) for r in more if r.x_kind == "w"),
        "legal_steps": tuple(
            LegalStep(r.x_id, r.x_a, _day(r.x_d)) for r in more if r.x_kind == "s"
        ),
        "plans": tuple(_plan(r.x_id, _day(r.x_d), r.x_b) for r in more if r.x_kind == "p"),
    }


def _day(value: Any) -> date:
    # a UNION of DATE columns comes back as str from SQLite
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _plan(plan_id: str, agreed_on: date, installments: str) -> Plan:
    items = orjson.loads(installments)
    return Plan(plan_id, agreed_on, tuple((date.fromisoformat(d), int(a)) for d, a in items))


# a lease's LeaseState fields from `_side_rows`, in LeaseState's positional order but its
# id and entries: org_id, monthly_rent_ore, complaints, warnings, legal_steps, plans, ended_on
_Fields = tuple[str, int, tuple[Any, ...], tuple[Any, ...], tuple[Any, ...], tuple[Any, ...], Any]
_NONE: tuple[Any, ...] = ()
if tuple(f.name for f in dataclass_fields(LeaseState)) != (
    "lease_id",
    "org_id",
    "monthly_rent_ore",
    "entries",
    "complaints",
    "warnings",
    "legal_steps",
    "plans",
    "ended_on",
):  # `load_for_evaluation` builds LeaseState positionally
    raise AssertionError("LeaseState's fields changed: update load_for_evaluation")


def _side_rows(
    rows: Sequence[Any],
) -> tuple[
    dict[str, _Fields],
    dict[str, frozenset[str]],
    dict[str, list[StoredDeadline]],
    dict[str, tuple[Cut, int]],
]:
    """Split `_PG_SIDE` rows: LeaseState fields (but entries), emitted ids, open deadlines,
    and per lease with a stored cut that cut and the entries booked before it now."""
    leases: dict[str, tuple[str, int, Any]] = {}
    emitted: dict[str, set[str]] = defaultdict(set)
    open_: dict[str, list[StoredDeadline]] = defaultdict(list)
    more: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    cuts: dict[str, tuple[Cut, int]] = {}
    for k, lease_id, a, b, c, d, t, n, before, settled, counted in rows:
        if k == "l":
            leases[lease_id] = (a, n, d)
            if before is not None:
                cuts[lease_id] = (Cut(before, settled, b), counted)
        elif k == "e":
            emitted[lease_id].add(a)
        elif k == "o":
            open_[lease_id].append((n, a, b, c, t))
        elif k == "c":
            more[lease_id]["complaints"].append(Complaint(a, b, d, c))
        elif k == "w":
            more[lease_id]["warnings"].append(Warning(a, b, d))
        elif k == "s":
            more[lease_id]["legal_steps"].append(LegalStep(a, b, d))
        else:
            more[lease_id]["plans"].append(_plan(a, d, c))
    fields: dict[str, _Fields] = {}
    for lease_id, (org_id, rent, ended_on) in leases.items():
        extra = more.get(lease_id)
        if extra is None:  # nearly every lease: no complaint, warning, step or plan
            fields[lease_id] = (org_id, rent, _NONE, _NONE, _NONE, _NONE, ended_on)
        else:
            fields[lease_id] = (
                org_id,
                rent,
                tuple(extra.get("complaints", ())),
                tuple(extra.get("warnings", ())),
                tuple(extra.get("legal_steps", ())),
                tuple(extra.get("plans", ())),
                ended_on,
            )
    frozen = {lease_id: frozenset(ids) for lease_id, ids in emitted.items()}
    deadlines = {lease_id: open_[lease_id] for lease_id in fields if lease_id in open_}
    return fields, frozen, deadlines, cuts


def _entry_rows(rows: Sequence[Any]) -> dict[str, list[LedgerEntry]]:
    """`_PG_ENTRIES_SQL` rows as LedgerEntry lists per lease, each in insertion (id) order.

    The rows mostly come in that order already (a lease's entries are read by index in
    heap order): a lease's list is sorted only when an entry follows a later one.
    """
    entries: dict[str, list[LedgerEntry]] = {}
    unsorted: set[str] = set()
    for row in rows:
        entry = LedgerEntry(*row[1:])
        have = entries.get(row[0])
        if have is None:
            entries[row[0]] = [entry]
        else:
            if have[-1].seq > entry.seq:
                unsorted.add(row[0])
            have.append(entry)
    for lease_id in unsorted:
        entries[lease_id].sort(key=_seq)
    return entries


def _seq(entry: LedgerEntry) -> int:
    return entry.seq
