"""Cases, timelines, households, referrals, consents, plans, meetings, legal steps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Select, bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.cases.engine import ConsentView, StepView
from services.cases.models import (
    cases,
    consents,
    households,
    installments,
    legal_steps,
    meetings,
    org_settings,
    payment_plans,
    referrals,
    timeline,
)
from shared.clock import local_date
from shared.db.bulk import (
    bulk_insert,
    copy_new_rows,
    driver_connection,
    in_literal,
    in_literal_ids,
    json_insert_sql,
    json_text_processor,
    quoted_table,
    text_arrays,
    unnest_upsert,
)
from shared.db.deferring import deferring

Row = dict[str, Any]
_OPEN = cases.c.status.not_in(("resolved", "evicted"))
_ENTRY_DEFAULTS: Row = {
    str(c.name): None for c in timeline.columns if c.name != "id"
}  # str: orjson
# Statements the consumer runs per signal, built once and executed with parameters
# (building `insert(t).values(**row)` anew costs more CPU than executing it).
_CREATE = insert(cases)
_ATTACH = (
    update(timeline)
    .where(timeline.c.lease_id == bindparam("p_lease_id"), timeline.c.case_id.is_(None))
    .values(case_id=bindparam("p_case_id"))
)
_UPDATES: dict[tuple[str, ...], Any] = {}  # update of these columns of one case
# a batch's lookups by lease ids, per dialect (sqlite: True/False), run with {"p_ids": ids}
# (`in_literal_ids`: a list on SQLite, one array literal text on PostgreSQL)
_OPEN_CASES_OF = {
    sqlite: select(cases).where(in_literal(cases.c.lease_id, "p_ids", sqlite=sqlite), _OPEN)
    for sqlite in (True, False)
}
_HOUSEHOLDS_OF = {
    sqlite: select(households).where(in_literal(households.c.lease_id, "p_ids", sqlite=sqlite))
    for sqlite in (True, False)
}


# PostgreSQL: the re-linking of many leases' stored history as ONE statement (the pairs as
# one JSON text), in place of an executemany of `_ATTACH`; the same rows change.
_PG_ATTACH_ALL = text(
    f"UPDATE {quoted_table(timeline)} SET case_id = x.case_id"
    " FROM json_to_recordset(CAST(:rows AS JSON)) AS x(lease_id TEXT, case_id TEXT)"
    f" WHERE {quoted_table(timeline)}.lease_id = x.lease_id"
    f" AND {quoted_table(timeline)}.case_id IS NULL"
)
_HOUSEHOLD_COLUMNS = tuple(c.name for c in households.columns)
_HOUSEHOLD_KEEP = tuple(c for c in _HOUSEHOLD_COLUMNS if c != "lease_id")
_HOUSEHOLD_VALUES = itemgetter(*_HOUSEHOLD_COLUMNS)
_HOUSEHOLD_TEXTS = tuple(c for c in _HOUSEHOLD_COLUMNS if c != "updated_at")


def _plain_household(home: Row) -> bool:
    """Whether the driver may COPY the household as it is: texts (or None) and an aware
    `updated_at` (UtcDateTime refuses a naive one; the upsert's path keeps doing so)."""
    for name in _HOUSEHOLD_TEXTS:
        value = home[name]
        if value is not None and type(value) is not str:
            return False
    at = home["updated_at"]
    return type(at) is datetime and at.tzinfo is not None


def _update_case(columns: tuple[str, ...]) -> Any:
    stmt = _UPDATES.get(columns)
    if stmt is None:
        stmt = (
            update(cases)
            .where(cases.c.id == bindparam("p_id"))
            .values({c: bindparam(f"p_{c}") for c in columns})
        )
        if len(_UPDATES) < 256:  # the callers use a handful of column sets
            _UPDATES[columns] = stmt
    return stmt


# PostgreSQL: a batch's timeline rows as ONE JSON text parameter (json_to_recordset), in
# their order (the ids are given in it). An executemany bound and encoded every column of
# every row apart (~10 µs of client CPU a row). The JSON `data` travels as the text the
# column's own serializer writes, so the stored text is the same.
_TIMELINE_COLUMNS = tuple(c.name for c in timeline.columns if c.name != "id")
_PG_TIMELINE_SQL = json_insert_sql(
    timeline, _TIMELINE_COLUMNS, rows="CAST(:rows AS JSON)", as_text=("data",)
)
assert _PG_TIMELINE_SQL is not None  # every column but `data` is plain JSON
_PG_TIMELINE_INSERT = text(_PG_TIMELINE_SQL)
_TEXT_COLUMNS = tuple(c for c in _TIMELINE_COLUMNS if c not in ("at", "due_date", "data"))
assert _TIMELINE_COLUMNS[-1] == "data"
_TIMELINE_PLAIN = itemgetter(*_TIMELINE_COLUMNS[:-1])  # a row's values but `data`, in order


async def _insert_timeline(db: AsyncSession, rows: list[Row]) -> None:
    """Insert timeline rows (each with every column but the id), in their order."""
    dialect = db.get_bind().dialect
    if dialect.name == "sqlite" or not all(_plain_entry(r) for r in rows):
        await db.execute(insert(timeline), rows)
        return
    to_json = json_text_processor(dialect, timeline.c.data.type)
    if to_json is None:  # the driver serialises JSON itself: its values as they are
        await db.execute(_PG_TIMELINE_INSERT, {"rows": orjson.dumps(rows).decode()})
        return
    # COPY (binary) on the transaction's driver connection: the server reads the rows for
    # less than from a JSON record set, with the same defaults (the id from its sequence,
    # in the rows' order), constraints and checks (a too long text, the case's foreign
    # key) as the INSERT. `at` is aware (`_plain_entry`): the driver sends its instant,
    # the one UtcDateTime's conversion to UTC gives; `data` the text the column's own
    # serializer writes, so the stored text is the same.
    driver = await driver_connection(db)
    records = [(*_TIMELINE_PLAIN(r), to_json(r["data"])) for r in rows]
    await driver.copy_records_to_table(
        timeline.name, schema_name=timeline.schema, columns=_TIMELINE_COLUMNS, records=records
    )


def _plain_entry(row: Row) -> bool:
    """Whether the row's values are of the types the JSON record set carries as they are
    (any other: the statement per row refuses or converts it as before)."""
    for name in _TEXT_COLUMNS:  # a loop: ~3 times cheaper than all() over a generator
        value = row[name]
        if value is not None and type(value) is not str:
            return False
    at, due_date = row["at"], row["due_date"]
    return (
        type(at) is datetime
        and at.tzinfo is not None
        and (due_date is None or type(due_date) is date)
    )


def _rows_by_lease(result: Any) -> dict[str, Row]:
    """Each row of `result` as a dict (`dict(row._mapping)`), by its `lease_id`: the keys
    zipped once per result, not looked up through each row's mapping (~1 µs a row)."""
    keys = tuple(result.keys())
    at = keys.index("lease_id")
    return {row[at]: dict(zip(keys, row, strict=True)) for row in result}


def _case_filter(
    query: Select[Any],
    org_id: str | None,
    municipality_code: str | None,
    status: str | None,
    ids: Sequence[str] | None,
) -> Select[Any]:
    if org_id is not None:
        query = query.where(cases.c.org_id == org_id)
    if municipality_code is not None:
        query = query.where(cases.c.municipality_code == municipality_code)
    if status is not None:
        query = query.where(cases.c.status == status)
    if ids is not None:
        query = query.where(cases.c.id.in_(list(ids)))
    return query


class CasesStore:
    """The cases service's tables, through one session."""

    def __init__(self, session: AsyncSession, *, batched: bool = False) -> None:
        # The consumer batches: open cases are looked up once per batch; new cases, their
        # history's re-linking and timeline rows are written together, before the next
        # statement of any kind (`shared.db.deferring`) or at `flush_entries`.
        self._db = session
        self.session = session
        if batched:
            self.session = deferring(session, self.flush_entries)
        self._batched = batched
        self._open: dict[str, Row | None] = {}
        self._pending: list[Row] = []
        self._new_cases: list[Row] = []  # batched: inserted at the flush, before the rest
        self._attach: dict[str, str] = {}  # batched: lease -> case its stored history joins
        self._unattached: dict[str, list[Row]] = {}  # batched: pending rows without a case
        self._households: dict[str, Row] = {}  # batched: written together at the flush
        self._known_households: dict[str, Row | None] = {}  # batched: read in one query

    async def prefetch_open(self, lease_ids: Sequence[str]) -> None:
        """Look up the open cases of many leases in one query (batched mode)."""
        wanted = [lid for lid in set(lease_ids) if lid not in self._open]
        if not wanted:
            return
        sqlite = self.session.get_bind().dialect.name == "sqlite"
        params = {"p_ids": in_literal_ids(wanted, sqlite=sqlite)}
        result = await self.session.execute(_OPEN_CASES_OF[sqlite], params)
        found = _rows_by_lease(result)
        for lid in wanted:
            self._open[lid] = found.get(lid)

    async def prefetch_households(self, lease_ids: Sequence[str]) -> None:
        """Read the households of many leases in one query (batched mode: case openings)."""
        wanted = [lid for lid in set(lease_ids) if lid not in self._known_households]
        if not wanted:
            return
        sqlite = self.session.get_bind().dialect.name == "sqlite"
        params = {"p_ids": in_literal_ids(wanted, sqlite=sqlite)}
        result = await self.session.execute(_HOUSEHOLDS_OF[sqlite], params)
        found = _rows_by_lease(result)
        for lid in wanted:
            self._known_households[lid] = found.get(lid)

    async def flush_entries(self) -> None:
        """Write what the batched store deferred: new cases, the re-linking of their leases'
        stored history, the buffered timeline rows, the buffered households (in this order:
        the timeline refers to the cases)."""
        db = self._db
        if self._new_cases:
            new, self._new_cases = self._new_cases, []
            await bulk_insert(db, cases, new)
        if self._attach:
            links, self._attach = self._attach, {}
            if db.get_bind().dialect.name == "sqlite":
                params = [{"p_lease_id": lease, "p_case_id": c} for lease, c in links.items()]
                await db.execute(_ATTACH, params)
            else:
                pairs = [{"lease_id": lease, "case_id": c} for lease, c in links.items()]
                await db.execute(_PG_ATTACH_ALL, {"rows": orjson.dumps(pairs).decode()})
        if self._pending:
            rows, self._pending, self._unattached = self._pending, [], {}
            await _insert_timeline(db, rows)
        if self._households:
            homes, self._households = list(self._households.values()), {}
            await self._write_households(homes)

    async def _write_households(self, homes: list[Row]) -> None:
        """Upsert households: on PostgreSQL one unnest statement whose column arrays travel
        as one array literal text each (asyncpg encodes an array parameter element by
        element, ~0.5 µs of CPU per value), or as arrays when a value needs an escape."""
        db = self._db
        if db.get_bind().dialect.name == "sqlite":
            await db.execute(self._household_upsert(), homes)
            return
        # nearly always new leases: COPY them, and upsert only when one is there already
        if all(_plain_household(h) for h in homes):
            records = [_HOUSEHOLD_VALUES(h) for h in homes]
            if await copy_new_rows(db, households, _HOUSEHOLD_COLUMNS, records):
                return
        literals = text_arrays(homes, _HOUSEHOLD_COLUMNS)
        if literals is None:
            params: Row = {f"u_{c}": [h[c] for h in homes] for c in _HOUSEHOLD_COLUMNS}
        else:
            params = dict(zip((f"u_{c}" for c in _HOUSEHOLD_COLUMNS), literals, strict=True))
        literal = literals is not None
        stmt = unnest_upsert(
            households, _HOUSEHOLD_COLUMNS, update=_HOUSEHOLD_KEEP, literal=literal
        )
        await db.execute(stmt, params)

    async def get(self, case_id: str) -> Row | None:
        """Return a case, or None."""
        result = await self.session.execute(select(cases).where(cases.c.id == case_id))
        row = result.first()
        return dict(row._mapping) if row else None

    async def open_case(self, lease_id: str) -> Row | None:
        """Return the lease's open case, or None."""
        if self._batched and lease_id in self._open:
            return self._open[lease_id]
        result = await self.session.execute(
            select(cases).where(cases.c.lease_id == lease_id, _OPEN)
        )
        row = result.first()
        return dict(row._mapping) if row else None

    async def list_cases(
        self,
        *,
        org_id: str | None = None,
        municipality_code: str | None = None,
        status: str | None = None,
        ids: Sequence[str] | None = None,
        limit: int | None = 100,
        offset: int = 0,
    ) -> list[Row]:
        """Return cases, newest first, filtered (limit None: all of them)."""
        query = select(cases).order_by(cases.c.opened_at.desc(), cases.c.id)
        query = _case_filter(query, org_id, municipality_code, status, ids)
        result = await self.session.execute(query.limit(limit).offset(offset))
        return [dict(r._mapping) for r in result]

    async def count_cases(
        self,
        *,
        org_id: str | None = None,
        municipality_code: str | None = None,
        status: str | None = None,
        ids: Sequence[str] | None = None,
    ) -> int:
        """Return how many cases the same filters as list_cases match."""
        query = _case_filter(
            select(func.count()).select_from(cases), org_id, municipality_code, status, ids
        )
        return int((await self.session.execute(query)).scalar_one())

    async def create(self, values: Mapping[str, Any]) -> None:
        """Insert a case (the partial unique index refuses a second open one).

        Batched: at the next statement or flush (the batch's cases in one statement).
        """
        if self._batched:
            self._new_cases.append(dict(values))
            self._open[values["lease_id"]] = dict(values)
            return
        await self.session.execute(_CREATE, dict(values))
        await self.session.flush()
        if self._batched:
            self._open[values["lease_id"]] = dict(values)

    def forget_open(self, lease_id: str) -> None:
        """Note that the lease's open case was just closed (batched lookups follow)."""
        self._open[lease_id] = None

    async def update(self, case_id: str, **values: Any) -> None:
        """Update columns of a case."""
        params = {f"p_{c}": v for c, v in values.items()}
        await self.session.execute(_update_case(tuple(values)), {"p_id": case_id, **params})

    async def add_entry(self, **values: Any) -> None:
        """Append a timeline entry."""
        values.setdefault("data", {})
        if self._batched:
            entry = {**_ENTRY_DEFAULTS, **values}
            self._pending.append(entry)
            if entry["case_id"] is None:
                self._unattached.setdefault(entry["lease_id"], []).append(entry)
            return
        await self.session.execute(insert(timeline).values(**values))

    async def attach_history(self, lease_id: str, case_id: str) -> None:
        """Attach the lease's earlier, unattached activity to a newly opened case.

        Batched: the buffered rows are attached here, the stored ones at the next statement
        or flush, before any row buffered after this call is written (those keep theirs).
        """
        if self._batched:
            for entry in self._unattached.pop(lease_id, ()):
                entry["case_id"] = case_id
            # stored rows are linked once: a later case of the lease finds none left
            self._attach.setdefault(lease_id, case_id)
            return
        await self.flush_entries()
        await self.session.execute(_ATTACH, {"p_lease_id": lease_id, "p_case_id": case_id})

    async def entries(self, case_id: str) -> list[Row]:
        """Return a case's timeline, oldest first."""
        await self.flush_entries()
        result = await self.session.execute(
            select(timeline)
            .where(timeline.c.case_id == case_id)
            .order_by(timeline.c.at, timeline.c.id)
        )
        return [dict(r._mapping) for r in result]

    async def arrears_cleared_on(self, lease_id: str) -> date | None:
        """Return the local date of the lease's latest arrears_cleared signal, if any."""
        await self.flush_entries()
        result = await self.session.execute(
            select(func.max(timeline.c.at)).where(
                timeline.c.lease_id == lease_id,
                timeline.c.kind == "signal",
                timeline.c.name == "arrears_cleared",
            )
        )
        at: datetime | None = result.scalar()
        return local_date(at) if at is not None else None

    async def upsert_household(self, values: Mapping[str, Any]) -> None:
        """Insert or replace a lease's household attributes (batched: at the next flush)."""
        if self._batched:
            self._households[values["lease_id"]] = dict(values)
            self._known_households.pop(values["lease_id"], None)
            return
        await self.session.execute(self._household_upsert(), [dict(values)])

    def _household_upsert(self) -> Any:
        dialect = self.session.get_bind().dialect.name
        stmt = (sqlite_insert if dialect == "sqlite" else pg_insert)(households)
        keep = [c.name for c in households.columns if c.name != "lease_id"]
        changes = {name: stmt.excluded[name] for name in keep}
        return stmt.on_conflict_do_update(index_elements=["lease_id"], set_=changes)

    async def household(self, lease_id: str) -> Row | None:
        """Return a lease's household attributes (one written in this batch included)."""
        if lease_id in self._households:
            return dict(self._households[lease_id])
        if lease_id in self._known_households:
            known = self._known_households[lease_id]
            return dict(known) if known is not None else None
        result = await self.session.execute(
            select(households).where(households.c.lease_id == lease_id)
        )
        row = result.first()
        return dict(row._mapping) if row else None

    # --- consents -------------------------------------------------------------------------

    async def consents(self, case_id: str) -> list[Row]:
        """Return a case's consents, oldest first."""
        result = await self.session.execute(
            select(consents).where(consents.c.case_id == case_id).order_by(consents.c.created_at)
        )
        return [dict(r._mapping) for r in result]

    async def consent_views(self, case_id: str) -> list[ConsentView]:
        """Return a case's consents as the engine sees them."""
        return [
            ConsentView(
                scope=tuple(c["scope"]),
                given_on=c["given_on"],
                expires_on=c["expires_on"],
                withdrawn_at=c["withdrawn_at"],
            )
            for c in await self.consents(case_id)
        ]

    async def consent_views_for(self, case_ids: Sequence[str]) -> dict[str, list[ConsentView]]:
        """Return the consents of many cases."""
        out: dict[str, list[ConsentView]] = {cid: [] for cid in case_ids}
        if not case_ids:
            return out
        result = await self.session.execute(
            select(consents).where(consents.c.case_id.in_(list(case_ids)))
        )
        for c in result:
            out[c.case_id].append(
                ConsentView(tuple(c.scope), c.given_on, c.expires_on, c.withdrawn_at)
            )
        return out

    async def cases_with_consent(self) -> list[str]:
        """Return ids of cases with at least one unwithdrawn consent."""
        result = await self.session.execute(
            select(consents.c.case_id).where(consents.c.withdrawn_at.is_(None)).distinct()
        )
        return list(result.scalars().all())

    async def add_consent(self, values: Mapping[str, Any]) -> None:
        """Insert a consent."""
        await self.session.execute(insert(consents).values(**values))

    async def withdraw_consent(self, consent_id: str, case_id: str, at: datetime) -> bool:
        """Withdraw a consent now; False if it does not exist or is already withdrawn."""
        result = await self.session.execute(
            update(consents)
            .where(
                consents.c.id == consent_id,
                consents.c.case_id == case_id,
                consents.c.withdrawn_at.is_(None),
            )
            .values(withdrawn_at=at)
        )
        return bool(getattr(result, "rowcount", 0))

    async def consent(self, consent_id: str, case_id: str) -> Row | None:
        """Return one consent of a case."""
        result = await self.session.execute(
            select(consents).where(consents.c.id == consent_id, consents.c.case_id == case_id)
        )
        row = result.first()
        return dict(row._mapping) if row else None

    # --- referrals and legal steps ---------------------------------------------------------

    async def referrals(self, case_id: str) -> list[Row]:
        """Return a case's referrals, oldest first."""
        result = await self.session.execute(
            select(referrals)
            .where(referrals.c.case_id == case_id)
            .order_by(referrals.c.referred_on, referrals.c.created_at)
        )
        return [dict(r._mapping) for r in result]

    async def statutory_notice_cases(self, case_ids: Sequence[str]) -> set[str]:
        """Return which of `case_ids` have a statutory notice to social services."""
        if not case_ids:
            return set()
        result = await self.session.execute(
            select(referrals.c.case_id).where(
                referrals.c.case_id.in_(list(case_ids)),
                referrals.c.statutory.is_(True),
                referrals.c.recipient == "social_services",
            )
        )
        return set(result.scalars().all())

    async def add_referral(self, values: Mapping[str, Any]) -> None:
        """Insert a referral."""
        await self.session.execute(insert(referrals).values(**values))

    async def set_referral_outcome(self, referral_id: str, case_id: str, outcome: str) -> bool:
        """Record a referral's outcome; False if it does not exist."""
        result = await self.session.execute(
            update(referrals)
            .where(referrals.c.id == referral_id, referrals.c.case_id == case_id)
            .values(outcome=outcome)
        )
        return bool(getattr(result, "rowcount", 0))

    async def referral(self, referral_id: str, case_id: str) -> Row | None:
        """Return one referral of a case."""
        result = await self.session.execute(
            select(referrals).where(referrals.c.id == referral_id, referrals.c.case_id == case_id)
        )
        row = result.first()
        return dict(row._mapping) if row else None

    async def legal_steps(self, case_id: str) -> list[Row]:
        """Return a case's legal steps in date order."""
        result = await self.session.execute(
            select(legal_steps)
            .where(legal_steps.c.case_id == case_id)
            .order_by(legal_steps.c.step_date, legal_steps.c.created_at)
        )
        return [dict(r._mapping) for r in result]

    async def step_views(self, case_id: str) -> list[StepView]:
        """Return a case's legal steps as the engine sees them."""
        return [StepView(s["step"], s["step_date"]) for s in await self.legal_steps(case_id)]

    async def add_legal_step(self, values: Mapping[str, Any]) -> None:
        """Insert a legal step."""
        await self.session.execute(insert(legal_steps).values(**values))

    # --- plans and meetings ----------------------------------------------------------------

    async def add_plan(self, values: Mapping[str, Any], items: Sequence[tuple[date, int]]) -> None:
        """Insert a payment plan and its installments."""
        await self.session.execute(insert(payment_plans).values(**values))
        await self.session.execute(
            insert(installments),
            [
                {"plan_id": values["id"], "seq": i, "due_date": d, "amount_ore": a}
                for i, (d, a) in enumerate(items, start=1)
            ],
        )

    async def plans(self, case_id: str) -> list[tuple[Row, list[Row]]]:
        """Return a case's plans with their installments."""
        result = await self.session.execute(
            select(payment_plans)
            .where(payment_plans.c.case_id == case_id)
            .order_by(payment_plans.c.agreed_on, payment_plans.c.created_at)
        )
        out: list[tuple[Row, list[Row]]] = []
        for plan in result:
            items = await self.session.execute(
                select(installments)
                .where(installments.c.plan_id == plan.id)
                .order_by(installments.c.seq)
            )
            out.append((dict(plan._mapping), [dict(i._mapping) for i in items]))
        return out

    async def add_meeting(self, values: Mapping[str, Any]) -> None:
        """Insert a meeting."""
        await self.session.execute(insert(meetings).values(**values))

    async def meetings(self, case_id: str) -> list[Row]:
        """Return a case's meetings in date order."""
        result = await self.session.execute(
            select(meetings)
            .where(meetings.c.case_id == case_id)
            .order_by(meetings.c.held_on, meetings.c.created_at)
        )
        return [dict(r._mapping) for r in result]

    # --- organisation settings -------------------------------------------------------------

    async def org_settings(self, org_id: str) -> Row | None:
        """Return an organisation's settings, or None."""
        result = await self.session.execute(
            select(org_settings).where(org_settings.c.org_id == org_id)
        )
        row = result.first()
        return dict(row._mapping) if row else None

    async def put_org_settings(self, values: Mapping[str, Any]) -> None:
        """Insert or replace an organisation's settings."""
        await self.session.execute(
            delete(org_settings).where(org_settings.c.org_id == values["org_id"])
        )
        await self.session.execute(insert(org_settings).values(**values))

    # --- retention -------------------------------------------------------------------------

    async def closed_unpurged(self, closed_before: datetime) -> list[str]:
        """Return ids of cases closed at or before `closed_before` whose data is not yet purged."""
        result = await self.session.execute(
            select(cases.c.id).where(
                ~_OPEN, cases.c.purged_at.is_(None), cases.c.closed_at <= closed_before
            )
        )
        return list(result.scalars().all())

    async def purge(self, case_id: str, at: datetime) -> None:
        """Remove a closed case's personal data; keep what anonymous statistics need."""
        await self.session.execute(
            update(timeline)
            .where(timeline.c.case_id == case_id)
            .values(text=None, actor=None, summary=None)
        )
        await self.session.execute(
            delete(timeline).where(timeline.c.case_id == case_id, timeline.c.kind == "note")
        )
        await self.session.execute(
            update(referrals)
            .where(referrals.c.case_id == case_id)
            .values(summary=None, created_by=None)
        )
        await self.session.execute(
            update(consents)
            .where(consents.c.case_id == case_id)
            .values(document_ref=None, created_by=None)
        )
        await self.session.execute(
            update(meetings)
            .where(meetings.c.case_id == case_id)
            .values(outcome=None, participants=None, created_by=None)
        )
        plan_ids = select(payment_plans.c.id).where(payment_plans.c.case_id == case_id)
        await self.session.execute(delete(installments).where(installments.c.plan_id.in_(plan_ids)))
        await self.session.execute(
            update(payment_plans)
            .where(payment_plans.c.case_id == case_id)
            .values(total_ore=None, created_by=None)
        )
        await self.session.execute(
            update(legal_steps)
            .where(legal_steps.c.case_id == case_id)
            .values(amount_owed_ore=None, created_by=None)
        )
        await self.update(case_id, assignee=None, purged_at=at, reason="purged")
