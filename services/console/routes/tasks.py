"""My tasks: open call tasks of me and my team, a task with the ledger, call, outcome.

The notifier, rules and ingest APIs take the service token, not a user token. The console
calls them only for staff roles, and only after checking that the task's organisation is
the signed-in user's (admins: any): the check happens here, before any data is shown.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import RedirectResponse, Response

from services.console.clients import BackendError, Backends
from services.console.render import Api, render
from services.console.session import Csrf, NotAllowed, StaffUser, User
from services.console.views import OPEN_TASK, order_tasks
from shared.events.notification import TaskOutcome

router = APIRouter(tags=["tasks"], include_in_schema=False)
Row = dict[str, Any]
OUTCOMES: tuple[str, ...] = get_args(TaskOutcome)
TaskId = Annotated[str, Path(pattern=r"^[A-Za-z0-9._:\-]{1,200}$")]


async def _team(api: Backends, user: User) -> str | None:
    try:
        staff = await api.service("notifier", "GET", f"/v1/staff/{user.sub}")
    except BackendError as exc:
        if exc.status == 404:
            return None
        raise
    return str(staff["team"])


def _mine(user: User, task: Row) -> bool:
    return user.role == "admin" or task["org_id"] == user.org


@router.get("/tasks")
async def my_tasks(request: Request, user: StaffUser, api: Api) -> Response:
    """List the open tasks of the user and their team, overdue and due first."""
    team = await _team(api, user)
    found: dict[str, Row] = {}
    queries: list[dict[str, str]] = [{"assignee": user.sub}]
    if team:
        queries.append({"team": team})
    if user.role == "admin":  # team leads and admins see every open task
        queries += [{"status": status} for status in OPEN_TASK]
    for params in queries:
        for task in await api.service("notifier", "GET", "/v1/tasks", params=params):
            if _mine(user, task):
                found[task["id"]] = task
    tasks = order_tasks(list(found.values()), now=api.clock.now())
    return render(request, "tasks.html", tasks=tasks, team=team)


async def _task(api: Backends, user: User, task_id: str) -> Row:
    task: Row = await api.service("notifier", "GET", f"/v1/tasks/{task_id}")
    if not _mine(user, task):
        raise NotAllowed
    return task


async def _case_of(api: Backends, user: User, lease_id: str) -> Row | None:
    cases = await api.cases(user, "GET", "/v1/cases", params={"limit": 500})
    return next((c for c in cases["items"] if c["lease_id"] == lease_id), None)


async def _optional(call: Any) -> Any:
    try:
        return await call
    except BackendError as exc:
        if exc.status == 404:
            return None
        raise


@router.get("/tasks/{task_id}")
async def task_page(request: Request, task_id: TaskId, user: StaffUser, api: Api) -> Response:
    """Show a task: the household's ledger, why it was flagged, the call link, the outcome."""
    task = await _task(api, user, task_id)
    lease_id = task["lease_id"]
    status = await _optional(api.service("rules", "GET", f"/v1/leases/{lease_id}/status"))
    contacts = await _optional(
        api.service("ingest", "GET", f"/internal/v1/leases/{lease_id}/contacts")
    )
    phones = [c["phone"] for c in (contacts or {}).get("tenants", []) if c.get("phone")]
    return render(
        request,
        "task.html",
        task=task,
        ledger=status,
        phones=phones,
        case=await _case_of(api, user, lease_id),
        outcomes=OUTCOMES,
        message=request.query_params.get("msg"),
    )


@router.post("/tasks/{task_id}/acknowledge", dependencies=[Csrf])
async def acknowledge(task_id: TaskId, user: StaffUser, api: Api) -> Response:
    """Take the task (it stops escalating)."""
    await _task(api, user, task_id)
    await api.service(
        "notifier", "POST", f"/v1/tasks/{task_id}/acknowledge", json={"staff_id": user.sub}
    )
    return RedirectResponse(f"/tasks/{task_id}?msg=task.acked", status_code=303)


@router.post("/tasks/{task_id}/complete", dependencies=[Csrf])
async def complete(
    request: Request,
    task_id: TaskId,
    user: StaffUser,
    api: Api,
    outcome: Annotated[TaskOutcome, Form()],
    promised_date: Annotated[date | None, Form()] = None,
    note: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Record the outcome of the call (and the promised date or a note)."""
    await _task(api, user, task_id)
    body: Row = {"outcome": outcome, "promised_date": promised_date and promised_date.isoformat()}
    if note.strip():
        body["note"] = note.strip()
    await api.service("notifier", "POST", f"/v1/tasks/{task_id}/complete", json=body)
    return RedirectResponse(f"/tasks/{task_id}?msg=task.done", status_code=303)
