"""Staff endpoints: directory, tasks, notifications of a lease, opt-outs (bearer token)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from notifier.deps import State, Store, require_service_token
from notifier.emit import task_event
from notifier.schemas import (
    NotificationRead,
    OptOutRead,
    StaffRead,
    StaffWrite,
    TaskAcknowledge,
    TaskComplete,
    TaskRead,
    from_row,
)
from notifier.store import OPEN_TASK
from shared.events.notification import TaskStatus
from shared.http import Conflict, NotFound, Unprocessable

router = APIRouter(prefix="/v1", tags=["staff"], dependencies=[Depends(require_service_token)])


StaffId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]


@router.put("/staff/{staff_id}", response_model=StaffRead)
async def put_staff(staff_id: StaffId, body: StaffWrite, store: Store, state: State) -> StaffRead:
    """Create or replace a staff member of the directory."""
    await store.upsert_staff(staff_id, body.model_dump(), now=state.rt.clock.now())
    row = await store.get_staff(staff_id)
    result: StaffRead = from_row(StaffRead, row)
    return result


@router.get("/staff", response_model=list[StaffRead])
async def list_staff(store: Store, team: str | None = None) -> list[StaffRead]:
    """List the staff directory (optionally one team)."""
    return [from_row(StaffRead, r) for r in await store.list_staff(team=team)]


@router.get("/staff/{staff_id}", response_model=StaffRead)
async def get_staff(staff_id: str, store: Store) -> StaffRead:
    """Return one staff member."""
    row = await store.get_staff(staff_id)
    if row is None:
        raise NotFound(f"no staff member {staff_id}")
    result: StaffRead = from_row(StaffRead, row)
    return result


@router.delete("/staff/{staff_id}", status_code=204)
async def deactivate_staff(staff_id: str, store: Store, state: State) -> Response:
    """Take a staff member off duty for good (kept for the history of their tasks)."""
    if not await store.deactivate_staff(staff_id, now=state.rt.clock.now()):
        raise NotFound(f"no staff member {staff_id}")
    return Response(status_code=204)


@router.get("/tasks", response_model=list[TaskRead])
async def list_tasks(
    store: Store,
    assignee: str | None = None,
    team: str | None = None,
    status: TaskStatus | None = None,
    lease_id: str | None = None,
    limit: int = Query(200, ge=1, le=1000),
) -> list[TaskRead]:
    """List tasks by assignee (or escalated to them), team, status or lease."""
    rows = await store.list_tasks(
        assignee_id=assignee, team=team, status=status, lease_id=lease_id, limit=limit
    )
    return [from_row(TaskRead, r) for r in rows]


async def _task(store: Store, task_id: str) -> Any:
    row = await store.get_task(task_id)
    if row is None:
        raise NotFound(f"no task {task_id}")
    return row


@router.get("/tasks/{task_id}", response_model=TaskRead)
async def get_task(task_id: str, store: Store) -> TaskRead:
    """Return one task."""
    result: TaskRead = from_row(TaskRead, await _task(store, task_id))
    return result


@router.post("/tasks/{task_id}/acknowledge", response_model=TaskRead)
async def acknowledge_task(
    task_id: str, body: TaskAcknowledge, store: Store, state: State
) -> TaskRead:
    """Take a task: it will not escalate any more."""
    task = await _task(store, task_id)
    member = await store.get_staff(body.staff_id)
    if member is None or not member.active:
        raise Unprocessable(
            "unknown staff member",
            detail=[
                {
                    "field": "body.staff_id",
                    "reason": f"no active staff member {body.staff_id} in the directory",
                }
            ],
        )
    now = state.rt.clock.now()
    row = await store.update_task(
        task_id,
        where_status=("created", "escalated"),
        status="acknowledged",
        assignee_id=body.staff_id,
        acknowledged_at=now,
        updated_at=now,
    )
    if row is None:
        raise Conflict(f"task {task_id} is {task.status}; only open tasks can be acknowledged")
    await store.stage([task_event(row, at=now)])
    result: TaskRead = from_row(TaskRead, row)
    return result


@router.post("/tasks/{task_id}/complete", response_model=TaskRead)
async def complete_task(task_id: str, body: TaskComplete, store: Store, state: State) -> TaskRead:
    """Close a task with its outcome (and the promised date or a note)."""
    task = await _task(store, task_id)
    now = state.rt.clock.now()
    row = await store.update_task(
        task_id,
        where_status=OPEN_TASK,
        status="completed",
        outcome=body.outcome,
        promised_date=body.promised_date,
        note=body.note,
        completed_at=now,
        updated_at=now,
    )
    if row is None:
        raise Conflict(f"task {task_id} is {task.status}; only open tasks can be completed")
    await store.stage([task_event(row, at=now)])
    result: TaskRead = from_row(TaskRead, row)
    return result


@router.get("/leases/{lease_id}/notifications", response_model=list[NotificationRead])
async def lease_notifications(lease_id: str, store: Store) -> list[NotificationRead]:
    """List the SMS of a lease (tenant and staff), oldest first; phones are masked."""
    return [from_row(NotificationRead, r) for r in await store.list_notifications(lease_id)]


@router.get("/opt-outs", response_model=list[OptOutRead])
async def list_opt_outs(store: Store) -> list[OptOutRead]:
    """List opt-out records (phone hashes, never numbers)."""
    return [from_row(OptOutRead, r) for r in await store.list_opt_outs()]


@router.get("/policy")
async def get_policy(state: State) -> dict[str, Any]:
    """Return the notification policy in force (version, rules, templates)."""
    return state.ctx.policy.model_dump(mode="json")
