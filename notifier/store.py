"""Every SQL statement of the notifier. Stores flush, never commit."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import JSON, Row, Text, and_, bindparam, func, insert, or_, select, text, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from notifier.models import (
    leases,
    notifications,
    opt_outs,
    outbox,
    retracted_signals,
    staff,
    tasks,
    team_cursors,
)
from shared.bus import add_to_outbox
from shared.clock import Clock
from shared.db import UtcDateTime
from shared.db.bulk import (
    array_literal,
    array_of,
    in_literal,
    in_literal_ids,
    json_insert_sql,
    json_text_processor,
)
from shared.db.deferring import deferring
from shared.db.errors import is_unique_violation
from shared.events import CloudEvent

PENDING = ("queued", "deferred")
# claimed by a sender, the provider's answer not recorded (`unknown`: an attempt a crash cut)
IN_FLIGHT = ("sending", "unknown")
# a transaction advisory lock per tenant: the weekly cap's check and the claim, atomically
_LOCK_TENANT = text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))")
OPEN_TASK = ("created", "acknowledged", "escalated")
N = notifications.c
T = tasks.c


# Statements a consumer batch runs once per signal are built once, per dialect, and
# executed with parameters: building `insert(t).values(**row)` anew cost ~350 us of CPU
# per row (coercing each value, a fresh cache key), executing the built one ~160 us.
def _per_dialect(build: Callable[[Any], Any]) -> dict[str, Any]:
    return {"sqlite": build(sqlite_insert), "postgresql": build(pg_insert)}


_NEW_NOTIFICATION = _per_dialect(
    lambda ins: ins(notifications).on_conflict_do_nothing().returning(*notifications.c)
)
_NEW_TASK = _per_dialect(lambda ins: ins(tasks).on_conflict_do_nothing().returning(*tasks.c))
_NEW_RETRACTION = _per_dialect(lambda ins: ins(retracted_signals).on_conflict_do_nothing())


def _upsert(ins: Any, table: Any, key: str, changed: tuple[str, ...]) -> Any:
    stmt = ins(table)
    return stmt.on_conflict_do_update(
        index_elements=[key], set_={c: stmt.excluded[c] for c in changed}
    )


_MARK_CLEARED = _per_dialect(
    lambda ins: _upsert(ins, leases, "lease_id", ("cleared_at", "updated_at"))
)
_SET_CURSOR = _per_dialect(lambda ins: _upsert(ins, team_cursors, "team", ("last_assignee_id",)))


# Cancellations take the leases as one `p_ids` parameter (`_ids`): a run of arrears_cleared
# signals in a consumer batch cancels for all its leases in one statement per table.
def _cancel_pending(sqlite: bool, by_signal: bool) -> Any:
    cond = [in_literal(N.lease_id, "p_ids", sqlite=sqlite), N.status.in_(PENDING)]
    cond.append(N.recipient_kind == "tenant")
    if by_signal:
        cond.append(N.signal_id == bindparam("p_signal_id"))
    return _cancel_notifications(*cond)


def _cancel_notifications(*cond: Any) -> Any:
    """Cancel the notifications matching `cond` (`p_detail`, `p_now`), returning them."""
    return (
        update(notifications)
        .where(*cond)
        .values(
            status="cancelled",
            detail=bindparam("p_detail"),
            updated_at=bindparam("p_now"),
            version=N.version + 1,
        )
        .returning(*notifications.c)
    )


def _cancel_tasks(sqlite: bool, by_signal: bool) -> Any:
    cond = [in_literal(T.lease_id, "p_ids", sqlite=sqlite), T.status.in_(OPEN_TASK)]
    cond.append(T.kind.in_(("phone_call", "letter")))
    if by_signal:
        cond.append(T.signal_id == bindparam("p_signal_id"))
    return (
        update(tasks)
        .where(*cond)
        .values(status="cancelled", updated_at=bindparam("p_now"), version=T.version + 1)
        .returning(*tasks.c)
    )


_LEASE_COLUMNS = ("lease_id", "org_id", "team", "tenant_ids", "ended", "updated_at")
_LEASE_CHANGED = ("org_id", "team", "tenant_ids", "updated_at")


def _pg_lease_upsert(
    consts: tuple[str, ...] = (), literals: tuple[str, ...] = (), *, upsert: bool = True
) -> Any:
    """A batch's lease upserts as ONE statement on PostgreSQL: an array per column.

    The tenant ids travel as JSON text (a list per lease would read as a 2-D array) and
    are cast to the column's JSON in the SELECT. The columns of `consts`, the same in
    every row, are bound once (`c_<column>`): asyncpg encodes an array element by element.
    The columns of `literals` travel as one array literal text each (`array_literal`).
    """
    varying = tuple(c for c in _LEASE_COLUMNS if c not in consts)
    arrays = []
    for name in varying:
        array = ARRAY(Text) if name == "tenant_ids" else array_of(leases.c[name].type)
        param = bindparam(f"u_{name}", type_=Text() if name in literals else array)
        arrays.append(sql_cast(param, array))
    source = func.unnest(*arrays).table_valued(*varying).render_derived()
    picked = [
        bindparam(f"c_{n}", type_=leases.c[n].type)
        if n in consts
        else sql_cast(source.c[n], JSON)
        if n == "tenant_ids"
        else source.c[n]
        for n in _LEASE_COLUMNS
    ]
    stmt = pg_insert(leases).from_select(list(_LEASE_COLUMNS), select(*picked))
    if not upsert:  # the plain INSERT (`_flush_leases`)
        return stmt
    return stmt.on_conflict_do_update(
        index_elements=["lease_id"], set_={c: stmt.excluded[c] for c in _LEASE_CHANGED}
    )


_PG_LEASE_UPSERT = _pg_lease_upsert()


# A batch's lookups by many ids, built once per dialect and run with `{"p_ids": ids}`
# (`_ids`: on PostgreSQL one array literal text, `in_literal`).
def _by_dialect(build: Callable[[bool], Any]) -> dict[str, Any]:
    return {"sqlite": build(True), "postgresql": build(False)}


_LEASES_OF = _by_dialect(
    lambda sqlite: select(leases).where(in_literal(leases.c.lease_id, "p_ids", sqlite=sqlite))
)
_RETRACTED_OF = _by_dialect(
    lambda sqlite: select(retracted_signals.c.signal_id).where(
        in_literal(retracted_signals.c.signal_id, "p_ids", sqlite=sqlite)
    )
)
_ANY_TENANT_OF = _by_dialect(
    lambda sqlite: select(N.lease_id).where(
        in_literal(N.lease_id, "p_ids", sqlite=sqlite),
        N.recipient_kind == "tenant",
        N.recipient_id == "*",
        N.status.in_(PENDING),
    )
)


def _existing_ids(table: Any) -> dict[str, Any]:
    return _by_dialect(
        lambda sqlite: select(table.c.id).where(in_literal(table.c.id, "p_ids", sqlite=sqlite))
    )


_EXISTING_IDS = {table.name: _existing_ids(table) for table in (notifications, tasks)}
_LEASE_CONSTS = ("ended", "updated_at")  # a consumer batch's leases share both
# the other columns as array literals (`array_literal`: ~0.02 µs per value against ~0.3-0.5
# in asyncpg); the tenant ids as the literal of their JSON texts
_LEASE_LITERALS = ("lease_id", "org_id", "team", "tenant_ids")
_PG_LEASE_UPSERT_LITERALS = _pg_lease_upsert(_LEASE_CONSTS, _LEASE_LITERALS)
_PG_LEASE_INSERT_LITERALS = _pg_lease_upsert(_LEASE_CONSTS, _LEASE_LITERALS, upsert=False)
_SQLITE_LEASE_UPSERT = _upsert(sqlite_insert, leases, "lease_id", _LEASE_CHANGED)
_CANCEL_PENDING = {
    False: _by_dialect(lambda sqlite: _cancel_pending(sqlite, by_signal=False)),
    True: _by_dialect(lambda sqlite: _cancel_pending(sqlite, by_signal=True)),
}
_CANCEL_TASKS = {
    False: _by_dialect(lambda sqlite: _cancel_tasks(sqlite, by_signal=False)),
    True: _by_dialect(lambda sqlite: _cancel_tasks(sqlite, by_signal=True)),
}
_CANCEL_ALERTS = _by_dialect(
    lambda sqlite: _cancel_notifications(
        in_literal(N.lease_id, "p_ids", sqlite=sqlite),
        in_literal(N.task_id, "p_task_ids", sqlite=sqlite),
        N.status.in_(PENDING),
    )
)


# PostgreSQL: a batch's new notifications (or tasks) as ONE JSON record-set insert, in place
# of an executemany that bound, encoded and executed every row apart. JSON columns travel
# as the text their own serializer writes (the stored text is the same).
_JSON_COLUMNS = {
    table.name: tuple(c.name for c in table.columns if isinstance(c.type, JSON))
    for table in (notifications, tasks)
}
_PG_NEW_ROWS = {
    table.name: text(
        cast(
            str,
            json_insert_sql(
                table,
                tuple(c.name for c in table.columns),
                rows="CAST(:rows AS JSON)",
                as_text=_JSON_COLUMNS[table.name],
            ),
        )
    )
    for table in (notifications, tasks)
}


def _plain_types(table: Any) -> dict[str, type]:
    """The Python type of each non-JSON column's values, as the JSON record set carries them."""
    return {
        c.name: datetime if isinstance(c.type, UtcDateTime) else c.type.python_type
        for c in table.columns
        if not isinstance(c.type, JSON)
    }


_PLAIN = {table.name: _plain_types(table) for table in (notifications, tasks)}


def _plain_row(table: Any, row: Mapping[str, Any]) -> bool:
    """Whether every value of `row` is None or exactly of its column's type (a bool is no
    int, a datetime no date) and every instant aware; any other row is bound by the driver
    as before (which converts or refuses it)."""
    for name, kind in _PLAIN[table.name].items():
        value = row[name]
        if value is None:
            continue
        if type(value) is not kind:
            return False
        if kind is datetime and cast(datetime, value).tzinfo is None:
            return False
    return True


def _row_type(table: Any) -> Any:
    """A named tuple of the table's columns: what `RETURNING *` gives for a new row."""
    return namedtuple(f"{table.name}_row", [c.name for c in table.columns])


_ROW_TYPES = {table.name: _row_type(table) for table in (notifications, tasks)}
_UTC_INDEXES = {
    table.name: tuple(i for i, c in enumerate(table.columns) if isinstance(c.type, UtcDateTime))
    for table in (notifications, tasks)
}
_NO_VALUES = {
    table.name: dict.fromkeys(str(c.name) for c in table.columns)
    for table in (notifications, tasks)
}


def _new_row(table: Any, row: dict[str, Any]) -> Any:
    """The row `INSERT ... RETURNING *` gives back for `row` (every column, in the table's
    order: no column has a default; instants come back in UTC, as UtcDateTime reads them)."""
    values = list(row.values())
    last: tuple[Any, Any] = (None, None)  # the columns of one row often share an instant
    for index in _UTC_INDEXES[table.name]:
        value = values[index]
        if value is not None:
            if value is not last[0]:
                last = (value, value.astimezone(UTC))
            values[index] = last[1]
    return _ROW_TYPES[table.name]._make(values)


def _by_id(rows: Sequence[Row[Any]]) -> list[Row[Any]]:
    """`rows` of a RETURNING (which gives no order) by id: the events a cancellation stages
    come out in the same order however many leases it was for."""
    return sorted(rows, key=lambda r: r.id)


class NotifierStore:
    """The notifier's tables, inside the caller's transaction."""

    def __init__(self, session: AsyncSession, *, clock: Clock, buffer_events: bool = False) -> None:
        self._db = session
        self.session = session
        if buffer_events:  # a consumer batch: new notifications and tasks are deferred too
            self.session = deferring(session, self._flush_new)
        # ids known to be absent from the table (`prefetch_absent`): creating one of them
        # needs no statement of its own; the batch's are inserted together
        self._absent: dict[str, set[str]] = {"notifications": set(), "tasks": set()}
        self._new: dict[str, list[dict[str, Any]]] = {"notifications": [], "tasks": []}
        self.clock = clock
        self._buffer = buffer_events
        self._events: list[CloudEvent[Any]] = []
        self._leases: dict[str, Row[Any] | None] = {}
        self._staff: dict[str, list[Row[Any]]] = {}
        self._cursors: dict[str, str | None] = {}
        self._cursor_writes: dict[str, str] = {}  # buffered round-robin moves, by team
        self._retracted: dict[str, bool] = {}
        self._any_tenant: set[str] | None = None  # leases that may have a pending "*" SMS
        self._lease_writes: dict[str, dict[str, Any]] = {}  # buffered upserts, by lease

    def _insert(self, table: Any) -> Any:
        return (sqlite_insert if self._sqlite() else pg_insert)(table)

    def _dialect(self) -> str:
        return str(self.session.get_bind().dialect.name)

    def _sqlite(self) -> bool:
        return self._dialect() == "sqlite"

    def _ids(self, ids: Iterable[str]) -> list[str] | str:
        """The `p_ids` of a `_by_dialect` lookup (`in_literal_ids`)."""
        return in_literal_ids(ids, sqlite=self._sqlite())

    def _lookup(self, statements: dict[str, Any]) -> Any:
        """The statement of this session's dialect (`_by_dialect`)."""
        return statements["sqlite" if self._sqlite() else "postgresql"]

    async def stage(self, events: Sequence[CloudEvent[Any]]) -> None:
        """Stage events in the outbox (published after this transaction commits)."""
        if self._buffer:
            self._events.extend(events)
        else:
            await add_to_outbox(self.session, outbox, events, clock=self.clock)

    async def flush_events(self) -> None:
        """Write buffered leases, new rows and events (one statement each; buffering stores)."""
        await self._flush_leases()
        await self._flush_new()
        events, self._events = self._events, []
        await add_to_outbox(self._db, outbox, events, clock=self.clock)

    async def prefetch_absent(
        self, notification_ids: Sequence[str], task_ids: Sequence[str]
    ) -> None:
        """Find in one query per table which of these ids do not exist yet (buffering store).

        `create_notification` and `create_task` of such an id then return the new row at
        once and the batch's new rows are inserted together: before the next statement of
        any kind, or at `flush_events`. Any other id is inserted on its own, as before.
        """
        for table, ids in ((notifications, notification_ids), (tasks, task_ids)):
            wanted = set(ids)
            if not wanted or not self._buffer:
                continue
            found = await self.session.execute(
                self._lookup(_EXISTING_IDS[table.name]), {"p_ids": self._ids(wanted)}
            )
            self._absent[table.name] |= wanted - set(found.scalars())

    def expect_new_notification(self, notification_id: str) -> None:
        """Tell a buffering store that `notification_id` cannot exist yet (the alert of a
        task created in this transaction): its `create_notification` is then deferred
        like a prefetched one. Were it wrong, the batch's plain INSERT would fail and the
        batch be applied event by event, never a row skipped."""
        if self._buffer:
            self._absent["notifications"].add(notification_id)

    def _deferred(self, table: Any, values: Mapping[str, Any]) -> Any:
        """The new row if `values` can be inserted later (its id known absent), else None."""
        absent = self._absent[table.name]
        if values["id"] not in absent:
            return None
        absent.discard(values["id"])  # a second create of it meets the deferred row
        row = {**_NO_VALUES[table.name], **values}  # every column, in the table's order
        self._new[table.name].append(row)
        return _new_row(table, row)

    async def _flush_new(self) -> None:
        moves, self._cursor_writes = self._cursor_writes, {}
        if moves:  # each team's last assignee of the batch: one upsert, not one per task
            rows = [{"team": t, "last_assignee_id": s} for t, s in moves.items()]
            await self._db.execute(_SET_CURSOR[self._dialect()], rows)
        for table in (notifications, tasks):
            rows = self._new[table.name]
            if rows:
                self._new[table.name] = []
                # a plain INSERT: a row someone else inserted meanwhile fails the batch (it
                # is then applied event by event, each seeing that row), never skipped
                await self._insert_rows(table, rows)

    async def _insert_rows(self, table: Any, rows: list[dict[str, Any]]) -> None:
        """INSERT `rows` (every column each), in their order: on PostgreSQL one JSON
        record-set statement when every value is plain (`_plain_row`), else (and on SQLite)
        an executemany."""
        db = self._db
        dialect = db.get_bind().dialect
        if dialect.name == "sqlite" or not all(_plain_row(table, r) for r in rows):
            await db.execute(insert(table), rows)
            return
        records = rows
        for name in _JSON_COLUMNS[table.name]:
            to_json = json_text_processor(dialect, table.c[name].type)
            if to_json is not None:
                records = [{**r, name: to_json(r[name])} for r in records]
        await db.execute(_PG_NEW_ROWS[table.name], {"rows": orjson.dumps(records).decode()})

    async def prefetch_leases(self, lease_ids: Sequence[str]) -> None:
        """Load many leases in one query for the `get_lease` calls that follow."""
        wanted = [i for i in set(lease_ids) if i not in self._leases]
        if not wanted:
            return
        params = {"p_ids": self._ids(wanted)}
        rows = await self.session.execute(self._lookup(_LEASES_OF), params)
        found = {row.lease_id: row for row in rows}
        for lease_id in wanted:
            self._leases[lease_id] = found.get(lease_id)

    # --- leases ---------------------------------------------------------------------

    async def upsert_lease(
        self, *, lease_id: str, org_id: str, team: str | None, tenant_ids: list[str], now: datetime
    ) -> None:
        """Remember a lease's org, team and tenant ids (from lease events).

        A buffering store writes the batch's leases in one statement: before anything
        reads or changes a lease again, and at `flush_events`.
        """
        self._leases.pop(lease_id, None)
        self._lease_writes[lease_id] = {
            "lease_id": lease_id,
            "ended": False,
            "org_id": org_id,
            "team": team,
            "tenant_ids": tenant_ids,
            "updated_at": now,
        }
        if not self._buffer:
            await self._flush_leases()

    async def _flush_leases(self) -> None:
        if not self._lease_writes:
            return
        rows, self._lease_writes = list(self._lease_writes.values()), {}
        if self._sqlite():
            await self.session.execute(_SQLITE_LEASE_UPSERT, rows)
            return
        first = rows[0]
        tenant_ids = [orjson.dumps(r["tenant_ids"]).decode() for r in rows]
        if all(
            r["ended"] == first["ended"] and r["updated_at"] == first["updated_at"] for r in rows
        ):
            params: dict[str, Any] = {
                f"u_{c}": array_literal(tenant_ids if c == "tenant_ids" else [r[c] for r in rows])
                for c in _LEASE_LITERALS
            }
            params |= {f"c_{c}": first[c] for c in _LEASE_CONSTS}
            # nearly always new leases: a plain INSERT in a savepoint costs the server less
            # than ON CONFLICT's speculative insertion (3.1-4.4 against 4.5-4.7 µs a lease,
            # 2,000-lease batches); when one is there already, the insert is rolled back
            # and the same rows upserted
            await self._flush_new()  # as the statement through `self.session` would, and
            # before the savepoint: a rollback to it must not take the batch's new rows too
            try:
                async with self._db.begin_nested():
                    await self._db.execute(_PG_LEASE_INSERT_LITERALS, params)
                return
            except IntegrityError as exc:
                if not is_unique_violation(exc):
                    raise
            await self.session.execute(_PG_LEASE_UPSERT_LITERALS, params)
            return
        params = {f"u_{c}": [r[c] for r in rows] for c in _LEASE_COLUMNS}
        params["u_tenant_ids"] = tenant_ids
        await self.session.execute(_PG_LEASE_UPSERT, params)

    async def end_lease(self, lease_id: str, *, now: datetime) -> None:
        """Mark a lease ended."""
        await self._flush_leases()
        await self.session.execute(
            update(leases).where(leases.c.lease_id == lease_id).values(ended=True, updated_at=now)
        )

    async def get_lease(self, lease_id: str) -> Row[Any] | None:
        """Return a known lease (prefetched rows are served from memory)."""
        if lease_id in self._leases:
            return self._leases[lease_id]
        await self._flush_leases()
        return (
            await self.session.execute(select(leases).where(leases.c.lease_id == lease_id))
        ).first()

    async def mark_cleared(self, leases: Sequence[tuple[str, str]], *, at: datetime) -> None:
        """Record that the arrears of these (lease id, org id) were cleared at `at`."""
        await self._flush_leases()
        rows = []
        for lease_id, org_id in dict(leases).items():  # a lease once per statement
            self._leases.pop(lease_id, None)
            values = {"org_id": org_id, "cleared_at": at, "updated_at": at}
            rows.append({"lease_id": lease_id, "tenant_ids": [], "ended": False, **values})
        if rows:
            await self.session.execute(_MARK_CLEARED[self._dialect()], rows)

    # --- retracted signals ------------------------------------------------------------

    async def record_retraction(self, values: Mapping[str, Any]) -> None:
        """Remember that a signal was withdrawn (a redelivery changes nothing)."""
        self._retracted[values["signal_id"]] = True
        await self.session.execute(_NEW_RETRACTION[self._dialect()], dict(values))

    async def retracted(self, signal_ids: Sequence[str]) -> set[str]:
        """Return which of `signal_ids` were withdrawn (answers are kept for this store)."""
        wanted = [i for i in set(signal_ids) if i not in self._retracted]
        if wanted:
            found = set(
                (
                    await self.session.execute(
                        self._lookup(_RETRACTED_OF), {"p_ids": self._ids(wanted)}
                    )
                ).scalars()
            )
            self._retracted.update({i: i in found for i in wanted})
        return {i for i in signal_ids if self._retracted[i]}

    # --- notifications --------------------------------------------------------------

    async def create_notification(self, values: Mapping[str, Any]) -> Row[Any] | None:
        """Insert a notification unless its id exists; return the new row (None if it existed)."""
        if self._any_tenant is not None and values.get("recipient_id") == "*":
            self._any_tenant.add(values["lease_id"])
        row = self._deferred(notifications, values)
        if row is not None:
            return cast("Row[Any]", row)
        stmt = _NEW_NOTIFICATION[self._dialect()]
        return (await self.session.execute(stmt, dict(values))).first()

    async def get_notification(self, notification_id: str) -> Row[Any] | None:
        """Return one notification."""
        return (
            await self.session.execute(select(notifications).where(N.id == notification_id))
        ).first()

    async def update_notification(
        self, notification_id: str, *, where_status: Sequence[str] | None = None, **values: Any
    ) -> Row[Any] | None:
        """Update a notification (only if in `where_status`), bump its version, return it."""
        cond = [N.id == notification_id]
        if where_status is not None:
            cond.append(N.status.in_(where_status))
        stmt = (
            update(notifications)
            .where(*cond)
            .values(version=N.version + 1, **values)
            .returning(*notifications.c)
        )
        return (await self.session.execute(stmt)).first()

    async def claim(
        self, notification_id: str, *, attempt_id: str, now: datetime
    ) -> Row[Any] | None:
        """Atomically move a due, pending notification to `sending` unless its lease cleared."""
        cleared = (
            select(leases.c.lease_id)
            .where(leases.c.lease_id == N.lease_id, leases.c.cleared_at >= N.created_at)
            .exists()
        )
        retracted = (
            select(retracted_signals.c.signal_id)
            .where(retracted_signals.c.signal_id == N.signal_id)
            .exists()
        )
        stmt = (
            update(notifications)
            .where(
                N.id == notification_id,
                N.status.in_(PENDING),
                N.due_at <= now,
                ~cleared,
                ~retracted,
            )
            .values(
                status="sending",
                attempt_id=attempt_id,
                attempt_started_at=now,
                attempts=N.attempts + 1,
                version=N.version + 1,
                updated_at=now,
            )
            .returning(*notifications.c)
        )
        return (await self.session.execute(stmt)).first()

    async def cancel_pending(
        self,
        lease_ids: Sequence[str],
        *,
        now: datetime,
        detail: str,
        signal_id: str | None = None,
    ) -> list[Row[Any]]:
        """Cancel the pending tenant notifications of leases (or of one signal of theirs);
        return the rows by id."""
        params: dict[str, Any] = {"p_ids": self._ids(lease_ids), "p_detail": detail, "p_now": now}
        if signal_id is not None:
            params["p_signal_id"] = signal_id
        stmt = self._lookup(_CANCEL_PENDING[signal_id is not None])
        return _by_id((await self.session.execute(stmt, params)).all())

    async def cancel_alerts(
        self, lease_ids: Sequence[str], task_ids: Sequence[str], *, now: datetime, detail: str
    ) -> list[Row[Any]]:
        """Cancel the pending staff alerts about `task_ids` (tasks of `lease_ids`: the lease
        is what the table is indexed by); return the rows by id."""
        if not task_ids:
            return []
        params = {
            "p_ids": self._ids(lease_ids),
            "p_task_ids": self._ids(task_ids),
            "p_detail": detail,
            "p_now": now,
        }
        return _by_id((await self.session.execute(self._lookup(_CANCEL_ALERTS), params)).all())

    async def prefetch_any_tenant(self, lease_ids: Sequence[str]) -> None:
        """Find in one query which leases have pending notifications for any tenant ("*").

        `pending_for_any_tenant` then skips its query for the other leases (notifications
        this store creates later are tracked), so a batch of lease events costs no
        round trip per lease for it.
        """
        self._any_tenant = set()
        if not lease_ids:
            return
        params = {"p_ids": self._ids(set(lease_ids))}
        result = await self.session.execute(self._lookup(_ANY_TENANT_OF), params)
        self._any_tenant = set(result.scalars())

    def may_have_any_tenant(self, lease_id: str) -> bool:
        """Whether `pending_for_any_tenant(lease_id)` may find rows (False: it returns [] with
        no statement; lets a batch's lease events skip the call)."""
        return self._any_tenant is None or lease_id in self._any_tenant

    async def pending_for_any_tenant(self, lease_id: str) -> list[Row[Any]]:
        """Return a lease's pending tenant notifications queued before its tenants were known."""
        if not self.may_have_any_tenant(lease_id):
            return []
        stmt = select(notifications).where(
            N.lease_id == lease_id,
            N.recipient_kind == "tenant",
            N.recipient_id == "*",
            N.status.in_(PENDING),
        )
        return list((await self.session.execute(stmt.order_by(N.id))).all())

    async def due_notifications(self, now: datetime, *, limit: int) -> list[Row[Any]]:
        """Return pending notifications due at `now`, oldest first."""
        stmt = (
            select(notifications)
            .where(N.status.in_(PENDING), N.due_at <= now)
            .order_by(N.due_at, N.id)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).all())

    async def stale_sending(self, before: datetime) -> list[Row[Any]]:
        """Return attempts still `sending` that started before `before` (a crash)."""
        stmt = select(notifications).where(N.status == "sending", N.attempt_started_at <= before)
        return list((await self.session.execute(stmt)).all())

    async def sent_times(self, *, org_id: str, tenant_id: str, since: datetime) -> list[datetime]:
        """Return when SMS to this tenant of `org_id` were sent since `since` (weekly cap),
        counting those claimed but not yet recorded as sent (`sending`, or `unknown` after a
        crash) at the start of their attempt: a send in flight counts against the cap.

        Call `lock_tenant` first in the same transaction, so that two senders (tasks or
        replicas) cannot both count the same room and both claim."""
        stmt = select(func.coalesce(N.sent_at, N.attempt_started_at)).where(
            N.org_id == org_id,
            N.recipient_id == tenant_id,
            N.recipient_kind == "tenant",
            or_(
                N.sent_at > since,
                and_(
                    N.sent_at.is_(None),
                    N.status.in_(IN_FLIGHT),
                    N.attempt_started_at > since,
                ),
            ),
        )
        return [t for t in (await self.session.execute(stmt)).scalars().all() if t is not None]

    async def lock_tenant(self, org_id: str, tenant_id: str) -> None:
        """Hold the tenant's send lock until the transaction ends (PostgreSQL: a transaction
        advisory lock on a hash of org and tenant). SQLite has one writer at a time, and its
        sender sends one SMS at a time."""
        if not self._sqlite():
            await self.session.execute(
                _LOCK_TENANT, {"key": f"bokvar.notifier.cap:{org_id}:{tenant_id}"}
            )

    async def find_for_callback(
        self, *, sid: str | None, attempt_id: str | None
    ) -> Row[Any] | None:
        """Find the notification a provider callback is about (by attempt id or SID)."""
        conds = []
        if attempt_id:
            conds.append(N.attempt_id == attempt_id)
        if sid:
            conds.append(N.provider_sid == sid)
        if not conds:
            return None
        return (await self.session.execute(select(notifications).where(or_(*conds)))).first()

    async def latest_for_phone(self, phone_hash: str) -> Row[Any] | None:
        """Return the latest SMS sent to a phone hash (to attribute an inbound reply)."""
        stmt = (
            select(notifications)
            .where(N.phone_hash == phone_hash)
            .order_by(N.sent_at.desc().nulls_last(), N.created_at.desc())
            .limit(1)
        )
        return (await self.session.execute(stmt)).first()

    async def list_notifications(self, lease_id: str) -> list[Row[Any]]:
        """Return a lease's notifications, oldest first."""
        stmt = select(notifications).where(N.lease_id == lease_id).order_by(N.created_at, N.id)
        return list((await self.session.execute(stmt)).all())

    async def count_by_status(self) -> dict[str, int]:
        """Return notification counts per status."""
        stmt = select(N.status, func.count()).group_by(N.status)
        return {s: int(c) for s, c in (await self.session.execute(stmt)).all()}

    # --- opt-outs -------------------------------------------------------------------

    async def set_opt_out(
        self,
        *,
        phone_hash: str,
        tenant_id: str | None,
        lease_id: str | None,
        opted_out: bool,
        keyword: str,
        now: datetime,
    ) -> None:
        """Record an opt-out (STOP) or opt-in (START) of a phone number."""
        values = {
            "tenant_id": tenant_id,
            "lease_id": lease_id,
            "opted_out": opted_out,
            "keyword": keyword,
            "updated_at": now,
        }
        stmt = self._insert(opt_outs).values(phone_hash=phone_hash, **values)
        await self.session.execute(
            stmt.on_conflict_do_update(index_elements=["phone_hash"], set_=values)
        )

    async def is_opted_out(self, *, phone_hash: str, tenant_id: str | None) -> bool:
        """Tell whether this phone (or, once it opted out, this tenant) said STOP."""
        cond = opt_outs.c.phone_hash == phone_hash
        if tenant_id:
            cond = or_(cond, opt_outs.c.tenant_id == tenant_id)
        rows = (await self.session.execute(select(opt_outs.c.opted_out).where(cond))).scalars()
        states = list(rows)
        return bool(states) and any(states)

    async def list_opt_outs(self) -> list[Row[Any]]:
        """Return every opt-out record, newest first."""
        stmt = select(opt_outs).order_by(opt_outs.c.updated_at.desc())
        return list((await self.session.execute(stmt)).all())

    # --- tasks ----------------------------------------------------------------------

    async def create_task(self, values: Mapping[str, Any]) -> Row[Any] | None:
        """Insert a task unless its id exists; return the new row (None if it existed)."""
        row = self._deferred(tasks, values)
        if row is not None:
            return cast("Row[Any]", row)
        stmt = _NEW_TASK[self._dialect()]
        return (await self.session.execute(stmt, dict(values))).first()

    async def get_task(self, task_id: str) -> Row[Any] | None:
        """Return one task."""
        return (await self.session.execute(select(tasks).where(T.id == task_id))).first()

    async def update_task(
        self, task_id: str, *, where_status: Sequence[str] | None = None, **values: Any
    ) -> Row[Any] | None:
        """Update a task (only if in `where_status`), bump its version, return it."""
        cond = [T.id == task_id]
        if where_status is not None:
            cond.append(T.status.in_(where_status))
        stmt = (
            update(tasks).where(*cond).values(version=T.version + 1, **values).returning(*tasks.c)
        )
        return (await self.session.execute(stmt)).first()

    async def cancel_open_tasks(
        self, lease_ids: Sequence[str], *, now: datetime, signal_id: str | None = None
    ) -> list[Row[Any]]:
        """Cancel the open call and letter tasks of leases (or of one signal of theirs);
        return them by id."""
        params: dict[str, Any] = {"p_ids": self._ids(lease_ids), "p_now": now}
        if signal_id is not None:
            params["p_signal_id"] = signal_id
        stmt = self._lookup(_CANCEL_TASKS[signal_id is not None])
        return _by_id((await self.session.execute(stmt, params)).all())

    async def overdue_tasks(self, now: datetime, *, limit: int = 500) -> list[Row[Any]]:
        """Return unacknowledged tasks past their due time."""
        stmt = (
            select(tasks)
            .where(T.status == "created", T.due_at < now)
            .order_by(T.due_at)
            .limit(limit)
        )
        return list((await self.session.execute(stmt)).all())

    async def list_tasks(
        self,
        *,
        assignee_id: str | None = None,
        team: str | None = None,
        status: str | None = None,
        lease_id: str | None = None,
        limit: int = 200,
    ) -> list[Row[Any]]:
        """Return tasks filtered by assignee, team, status or lease, newest first."""
        cond = []
        if assignee_id:
            cond.append(or_(T.assignee_id == assignee_id, T.escalated_to == assignee_id))
        if team:
            cond.append(T.team == team)
        if status:
            cond.append(T.status == status)
        if lease_id:
            cond.append(T.lease_id == lease_id)
        stmt = select(tasks).where(and_(True, *cond)).order_by(T.created_at.desc()).limit(limit)
        return list((await self.session.execute(stmt)).all())

    # --- staff ----------------------------------------------------------------------

    async def upsert_staff(
        self, staff_id: str, values: Mapping[str, Any], *, now: datetime
    ) -> None:
        """Create or replace a staff member."""
        data = {**values, "updated_at": now}
        stmt = self._insert(staff).values(id=staff_id, created_at=now, **data)
        await self.session.execute(stmt.on_conflict_do_update(index_elements=["id"], set_=data))

    async def get_staff(self, staff_id: str) -> Row[Any] | None:
        """Return one staff member."""
        return (await self.session.execute(select(staff).where(staff.c.id == staff_id))).first()

    async def list_staff(self, *, team: str | None = None) -> list[Row[Any]]:
        """Return the directory (optionally one team), by id."""
        stmt = select(staff).order_by(staff.c.id)
        if team:
            stmt = stmt.where(staff.c.team == team)
        return list((await self.session.execute(stmt)).all())

    async def team_members(self, team: str) -> list[Row[Any]]:
        """Return a team's members, read once per store (one transaction)."""
        if team not in self._staff:
            self._staff[team] = await self.list_staff(team=team)
        return self._staff[team]

    async def deactivate_staff(self, staff_id: str, *, now: datetime) -> bool:
        """Mark a staff member inactive; return whether they existed."""
        stmt = (
            update(staff)
            .where(staff.c.id == staff_id)
            .values(active=False, updated_at=now)
            .returning(staff.c.id)
        )
        return (await self.session.execute(stmt)).first() is not None

    async def cursor(self, team: str) -> str | None:
        """Return the last assignee of a team's round robin (row locked on PostgreSQL)."""
        if team in self._cursors:
            return self._cursors[team]
        stmt = (
            select(team_cursors.c.last_assignee_id)
            .where(team_cursors.c.team == team)
            .with_for_update()
        )
        value = (await self.session.execute(stmt)).scalar_one_or_none()
        self._cursors[team] = value
        return value

    async def set_cursor(self, team: str, staff_id: str) -> None:
        """Advance a team's round robin (a buffering store writes it before its next
        statement; `cursor` locked the team's row for this transaction)."""
        self._cursors[team] = staff_id
        if self._buffer:
            self._cursor_writes[team] = staff_id
            return
        row = {"team": team, "last_assignee_id": staff_id}
        await self.session.execute(_SET_CURSOR[self._dialect()], row)
