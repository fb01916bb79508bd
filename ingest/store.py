"""Every SQL statement of the ingest service. Stores flush, never commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    delete,
    func,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from ingest.models import api_clients, complaints, invoices, leases, seen_events, tenant_contacts
from ingest.processing import ContactRow, Known, LeaseRow, Writes
from shared.db.bulk import array_literal, unnest_upsert


def _member(column: ColumnElement[str], pg: bool) -> ColumnElement[bool]:
    """`column` is one of the parameter `ids`: one array on PostgreSQL; on SQLite one JSON
    array text read with json_each (`_json_ids`).

    SQLite looks each value up in the index either way, but an expanding `IN (...)` of
    5,000 ids was rendered, parsed and bound anew each time (load_known: 16-21 ms of
    CPU per 5,000-event batch).
    """
    if pg:
        return column == any_(bindparam("ids", type_=postgresql.ARRAY(String())))
    ids = func.json_each(bindparam("ids", type_=String())).table_valued("value")
    return column.in_(select(ids.c.value))


_IDS = postgresql.ARRAY(String())
# the positions of load_known's queries in `_known_queries`
_OCR, _COMPLAINTS, _LEASES, _SEEN = range(4)


def _json_ids(ids: Iterable[str]) -> str:
    """The `ids` parameter of `_member` on SQLite."""
    return orjson.dumps(list(ids)).decode()


def _per_id(
    table: Table,
    key: str,
    columns: tuple[str, ...],
    *where: ColumnElement[bool],
    computed: tuple[ColumnElement[Any], ...] = (),
) -> Select[Any]:
    """PostgreSQL: rows of `table` whose `key` is one of the array `ids`, one index lookup
    per id: `unnest(ids) CROSS JOIN LATERAL (SELECT ... WHERE key = id ... OFFSET 0)`.

    `key = ANY(ids)` over 5,000 ids was planned as a (parallel) sequential or bitmap scan
    once the table held a few hundred thousand rows (seen_events: ~20 ms and 36 ms of
    server CPU per batch at 200,000 rows, growing with the table); this grows with the
    batch only (~7 ms). OFFSET 0 keeps the planner from flattening the subquery into a
    hash join over the whole table. The price is on small tables: at 20,000 rows a hashed
    sequential scan takes 1.7-2.0 ms, the lookups 4.9-8.2 ms; a 30-day dedup window is
    far past that size. `computed`: labelled expressions over the row, returned too.
    `ids` is one array literal as text (`shared.db.bulk.array_literal`), cast by the
    server: asyncpg encodes a list element by element (~0.35 µs of client CPU an id, the
    literal ~0.1; the server reads either for ~0.1).
    """
    array = cast(bindparam("ids", type_=Text()), _IDS)
    ids = func.unnest(array).table_valued("id").render_derived(name="u")
    found = (
        select(*(table.c[c] for c in columns), *computed)
        .where(table.c[key] == ids.c.id, *where)
        .offset(literal_column("0"))
        .lateral("x")
    )
    return select(*found.c).select_from(ids).join(found, true())


@cache
def _known_queries(pg: bool) -> tuple[Select[Any], Select[Any], Select[Any], Select[Any]]:
    """The reads of `load_known`, built once (SQLAlchemy then reuses their compiled form).

    PostgreSQL: an index lookup per id (`_per_id`); SQLite: `IN (json_each(ids))` (it
    looks each value up in the index). The seen ids come with `recent`: seen within the
    dedup window (else stored but expired, see `Known.expired`).
    """
    org = bindparam("org_id", type_=String())
    since = bindparam("since", type_=seen_events.c.seen_at.type)
    recent = (seen_events.c.seen_at >= since).label("recent")
    if pg:
        return (
            _per_id(invoices, "ocr", ("ocr", "lease_id", "invoice_id"), invoices.c.org_id == org),
            _per_id(
                complaints, "complaint_id", ("complaint_id", "lease_id"), complaints.c.org_id == org
            ),
            _per_id(leases, "lease_id", ("lease_id", "org_id", "due_day")),
            _per_id(
                seen_events,
                "event_id",
                ("event_id", "body_hash"),
                seen_events.c.org_id == org,
                computed=(recent,),
            ),
        )
    return (
        select(invoices.c.ocr, invoices.c.lease_id, invoices.c.invoice_id).where(
            invoices.c.org_id == org, _member(invoices.c.ocr, pg)
        ),
        select(complaints.c.complaint_id, complaints.c.lease_id).where(
            complaints.c.org_id == org, _member(complaints.c.complaint_id, pg)
        ),
        select(leases.c.lease_id, leases.c.org_id, leases.c.due_day).where(
            _member(leases.c.lease_id, pg)
        ),
        select(seen_events.c.event_id, seen_events.c.body_hash, recent).where(
            seen_events.c.org_id == org, _member(seen_events.c.event_id, pg)
        ),
    )


_SQLITE_UPSERTS: dict[tuple[Table, tuple[str, ...], tuple[str, ...], tuple[str, ...]], Any] = {}


def _json_each_upsert(
    table: Table, cols: tuple[str, ...], consts: tuple[str, ...], update: tuple[str, ...]
) -> Any:
    """SQLite's counterpart of `shared.db.bulk.unnest_upsert`: the rows as one JSON array parameter
    (`rows`, one array per row), read with json_each; no per-row parameter processing."""
    key = (table, cols, consts, update)
    stmt = _SQLITE_UPSERTS.get(key)
    if stmt is None:
        if any(table.c[c].type.python_type not in (str, int, bool) for c in cols):
            raise TypeError("json_each rows carry text, integers and booleans only")
        source = func.json_each(bindparam("rows", type_=String())).table_valued("value")
        values: dict[str, Any] = {
            c: func.json_extract(source.c.value, f"$[{i}]") for i, c in enumerate(cols)
        }
        values |= {c: bindparam(f"c_{c}", type_=table.c[c].type) for c in consts}
        names = [c.name for c in table.columns if c.name in values]
        # WHERE: SQLite needs it between INSERT ... SELECT and an ON CONFLICT clause
        rows = select(*(values[c] for c in names)).select_from(source).where(true())
        insert = sqlite.insert(table).from_select(names, rows)
        stmt = insert
        if update:
            stmt = insert.on_conflict_do_update(
                index_elements=[c.name for c in table.primary_key.columns],
                set_={c: insert.excluded[c] for c in update},
            )
        _SQLITE_UPSERTS[key] = stmt
    return stmt


class IngestStore:
    """Reads and writes of ingest's tables within one session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._pg = session.get_bind().dialect.name == "postgresql"

    def _insert(self, table: Table) -> Any:
        if self._pg:
            return postgresql.insert(table)
        return sqlite.insert(table)

    async def _upsert(
        self,
        table: Table,
        columns: dict[str, list[Any]],
        update: tuple[str, ...],
        consts: dict[str, Any] | None = None,
    ) -> None:
        """Insert rows given column by column (`consts`: the same value in every row),
        updating `update` where the primary key exists.

        On PostgreSQL one `unnest` statement with an array per column (built once); on
        SQLite an executemany.
        """
        if not next(iter(columns.values())):
            return
        consts = consts or {}
        if self._pg:
            stmt = unnest_upsert(table, tuple(columns), consts=tuple(consts), update=update)
            params = {f"u_{c}": values for c, values in columns.items()}
            params |= {f"c_{c}": value for c, value in consts.items()}
            await self.session.execute(stmt, params)
            return
        rows = orjson.dumps(list(zip(*columns.values(), strict=True))).decode()
        stmt = _json_each_upsert(table, tuple(columns), tuple(consts), update)
        await self.session.execute(stmt, {"rows": rows, **{f"c_{c}": v for c, v in consts.items()}})

    async def create_client(
        self, *, org_id: str, name: str, key_hash: str, key_prefix: str, now: datetime
    ) -> None:
        """Store a new API client (the key's hash only)."""
        await self.session.execute(
            api_clients.insert().values(
                org_id=org_id, name=name, key_hash=key_hash, key_prefix=key_prefix, created_at=now
            )
        )

    async def list_clients(self, org_id: str | None = None) -> list[Any]:
        """Every API client (of `org_id`), oldest first: id, org, name, key prefix, created,
        revoked. Never the hash."""
        c = api_clients.c
        stmt = select(c.id, c.org_id, c.name, c.key_prefix, c.created_at, c.revoked_at)
        if org_id is not None:
            stmt = stmt.where(c.org_id == org_id)
        return list((await self.session.execute(stmt.order_by(c.id))).all())

    async def revoke_client(self, client_id: int, now: datetime) -> Any | None:
        """Revoke an API client; return it (with `revoked_at`, the earlier one if it was
        revoked already), or None when there is no such client."""
        c = api_clients.c
        await self.session.execute(
            update(api_clients)
            .where(c.id == client_id, c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        found = await self.session.execute(
            select(c.id, c.org_id, c.name, c.key_prefix, c.revoked_at).where(c.id == client_id)
        )
        return found.first()

    async def client_org(self, key_hash: str) -> tuple[str, str] | None:
        """Return (org id, stored hash) of the active client with `key_hash`, if any."""
        row = (
            await self.session.execute(
                select(api_clients.c.org_id, api_clients.c.key_hash).where(
                    api_clients.c.key_hash == key_hash, api_clients.c.revoked_at.is_(None)
                )
            )
        ).first()
        return None if row is None else (row.org_id, row.key_hash)

    async def load_known(
        self,
        org_id: str,
        *,
        lease_ids: set[str],
        ocrs: set[str],
        complaint_ids: set[str],
        event_ids: set[str],
        seen_since: datetime,
    ) -> Known:
        """Load what a batch needs: its leases, OCR numbers, complaints and seen event ids
        (those seen before `seen_since` in `Known.expired`)."""
        known = Known()
        for inv in await self._rows(_OCR, ocrs, org_id=org_id):
            known.ocr[inv.ocr] = (inv.lease_id, inv.invoice_id)
        for c in await self._rows(_COMPLAINTS, complaint_ids, org_id=org_id):
            known.complaints[c.complaint_id] = c.lease_id
        # the leases that OCR numbers and complaints point at are needed too
        wanted = {lease for lease, _ in known.ocr.values()} | set(known.complaints.values())
        # one LeaseRow (frozen) per distinct org and due day: most leases share one
        rows: dict[tuple[str, int | None], LeaseRow] = {}
        for lease_id, org, due_day in await self._rows(_LEASES, lease_ids | wanted):
            row = rows.get((org, due_day))
            if row is None:
                row = rows[(org, due_day)] = LeaseRow(org, due_day)
            known.leases[lease_id] = row
        for r in await self._rows(_SEEN, event_ids, org_id=org_id, since=seen_since):
            if r.recent:
                known.seen[r.event_id] = r.body_hash
            else:
                known.expired.add(r.event_id)
        return known

    async def _rows(self, which: int, ids: set[str], **params: Any) -> list[Any]:
        """Rows of `_known_queries()[which]` for `ids`, in one statement."""
        if not ids:
            return []
        # PostgreSQL: one array literal (`_per_id`). Not for the writes: the server reads
        # a literal into varchar(n)[] for ~0.7 µs more a value than the binary array,
        # more than the client saves.
        values = array_literal(list(ids)) if self._pg else _json_ids(ids)
        query = _known_queries(self._pg)[which]
        return list(await self.session.execute(query, {"ids": values, **params}))

    async def apply(
        self, org_id: str, writes: Writes, now: datetime, *, expired: set[str] | None = None
    ) -> None:
        """Store the vault changes and the seen event ids of a batch.

        `expired`: the ids `load_known` found stored but outside the dedup window
        (`Known.expired`); those rows are overwritten and every other seen id is inserted,
        so a row another request stored since the lookup fails the write (IntegrityError).
        None: every seen id is upserted.
        """
        await self._store_leases(writes, now)
        await self._replace_contacts(writes.contacts, now, writes.new_leases)
        invoiced = list(writes.invoices.values())
        await self._upsert(
            invoices,
            {
                "ocr": list(writes.invoices),
                "lease_id": [lease for lease, _ in invoiced],
                "invoice_id": [inv for _, inv in invoiced],
            },
            ("lease_id", "invoice_id"),
            {"org_id": org_id},
        )
        await self._store_complaints(org_id, writes)
        await self._store_seen(org_id, writes.seen, now, expired)
        await self.session.flush()

    async def _store_leases(self, writes: Writes, now: datetime) -> None:
        """Insert the batch's new leases (`Writes.new_leases`) and upsert the others.

        A plain INSERT for a lease the lookup did not find, as for seen ids
        (`_store_seen`): ON CONFLICT's speculative insertion costs the server more per
        row. A lease another request stored since the lookup fails the write (a unique
        violation), and the batch is processed again with it known (`Ingestor.ingest`).
        """
        new: dict[str, tuple[LeaseRow, bool]] = {}
        stored: dict[str, tuple[LeaseRow, bool]] = {}
        for lease_id, written in writes.leases.items():
            (new if lease_id in writes.new_leases else stored)[lease_id] = written
        for rows, overwrite in ((new, ()), (stored, ("due_day", "ended", "updated_at"))):
            values = list(rows.values())
            await self._upsert(
                leases,
                {
                    "lease_id": list(rows),
                    "org_id": [row.org_id for row, _ in values],
                    "due_day": [row.due_day for row, _ in values],
                    "ended": [e for _, e in values],
                },
                overwrite,
                {"updated_at": now},
            )

    async def _store_seen(
        self, org_id: str, seen: dict[str, str], now: datetime, expired: set[str] | None
    ) -> None:
        """Insert the new seen ids and overwrite the expired ones (all of them: None).

        A plain INSERT, not ON CONFLICT: PostgreSQL's speculative insertion (the arbiter
        index checked before the row is inserted, and the insertion confirmed after) cost
        7.5-9.7 us of server CPU per new id, a plain insert 4.5-5.7 (5,000-row batches at
        200,000 rows).
        """
        if expired is None:
            new, again = {}, seen
        elif expired.isdisjoint(seen):
            new, again = seen, {}
        else:
            new = {e: h for e, h in seen.items() if e not in expired}
            again = {e: h for e, h in seen.items() if e in expired}
        consts = {"org_id": org_id, "seen_at": now}
        overwrite: tuple[tuple[str, ...], ...] = ((), ("seen_at", "body_hash"))
        for rows, columns in zip((new, again), overwrite, strict=True):
            values = {"event_id": list(rows), "body_hash": list(rows.values())}
            await self._upsert(seen_events, values, columns, consts)

    async def _replace_contacts(
        self, contacts: dict[str, list[ContactRow]], now: datetime, new_leases: set[str]
    ) -> None:
        """Replace the contacts of the batch's leases; a lease new to the database
        (`new_leases`) has none to delete (contacts are written with their lease only)."""
        if not contacts:
            return
        stored = [lease_id for lease_id in contacts if lease_id not in new_leases]
        if stored:
            gone = delete(tenant_contacts).where(_member(tenant_contacts.c.lease_id, self._pg))
            await self.session.execute(gone, {"ids": stored if self._pg else _json_ids(stored)})
        rows = [(lease_id, c) for lease_id, items in contacts.items() for c in items]
        await self._upsert(
            tenant_contacts,
            {
                "lease_id": [lease_id for lease_id, _ in rows],
                "tenant_id": [c.tenant_id for _, c in rows],
                "pseudonym": [c.pseudonym for _, c in rows],
                "name": [c.name for _, c in rows],
                "phone": [c.phone for _, c in rows],
                "language": [c.language for _, c in rows],
            },
            (),
            {"opted_out": False, "updated_at": now},
        )

    async def _store_complaints(self, org_id: str, writes: Writes) -> None:
        if writes.complaints:
            rows = [
                {
                    "org_id": org_id,
                    "complaint_id": c.complaint_id,
                    "lease_id": c.lease_id,
                    "category": c.category,
                    "description": c.description,
                    "occurred_at": c.occurred_at,
                }
                for c in writes.complaints.values()
            ]
            stmt = self._insert(complaints)
            stmt = stmt.on_conflict_do_update(
                index_elements=["org_id", "complaint_id"],
                set_={
                    "lease_id": stmt.excluded.lease_id,
                    "category": stmt.excluded.category,
                    "description": stmt.excluded.description,
                    "occurred_at": stmt.excluded.occurred_at,
                },
            )
            await self.session.execute(stmt, rows)
        for complaint_id, resolved_at in writes.resolved.items():
            await self.session.execute(
                update(complaints)
                .where(complaints.c.org_id == org_id, complaints.c.complaint_id == complaint_id)
                .values(resolved_at=resolved_at)
            )

    async def lease_contacts(self, lease_id: str) -> tuple[str, Sequence[Any]] | None:
        """Return (org id, contact rows) of a lease, or None when the lease is unknown."""
        org = (
            await self.session.execute(select(leases.c.org_id).where(leases.c.lease_id == lease_id))
        ).scalar_one_or_none()
        if org is None:
            return None
        rows = (
            await self.session.execute(
                select(
                    tenant_contacts.c.tenant_id,
                    tenant_contacts.c.phone,
                    tenant_contacts.c.language,
                    tenant_contacts.c.opted_out,
                )
                .where(tenant_contacts.c.lease_id == lease_id)
                .order_by(tenant_contacts.c.tenant_id)
            )
        ).all()
        return org, rows

    async def purge_seen(self, before: datetime) -> int:
        """Forget event ids seen before `before` (outside the dedup window)."""
        result = await self.session.execute(
            delete(seen_events).where(seen_events.c.seen_at < before)
        )
        return int(getattr(result, "rowcount", 0) or 0)
