"""The staff console in a real browser (headless Chromium) over the running pipeline.

Five processes as `bokvar up` runs them (ingest, rules, notifier, cases, console) on one
simulated clock, a simulated month of an ERP's history pushed through ingest, then every
role signs in through the dev sign-in and works the pages: a call task is completed,
consent recorded, referrals made, Kronofogden refused with the missing steps, and the
dashboard chart drawn. Each page is saved as a screenshot (BOKVAR_TEST_SCREENSHOT_DIR).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bokvar.processes import ServiceProcess
from bokvar.simulate.generator import Shares, history, households
from bokvar.simulate.run import push_backfill
from shared.auth import encode_token
from shared.events import CaseOpened, TaskChanged
from shared.topics import CASE_EVENTS, NOTIFICATION_EVENTS
from tests.e2e.conftest import api_key
from tests.e2e.pipeline import Pipeline
from tests.e2e.test_pipeline import charge, lease, local, post
from tests.e2e.watch import Watcher

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(240)]

ORG = "bostader"
SERVICE_TOKEN = "console-e2e-service-token-0123456789abcdef"
JWT_SECRET = "console-e2e-cases-jwt-secret-0123456789abcdef"
SECRETS = {"BOKVAR_SERVICE_TOKEN": SERVICE_TOKEN, "BOKVAR_CASES_JWT_SECRET": JWT_SECRET}
PHONE = "+46701234567"
# Form fields a screen reader cannot name (no <label>, no aria-label).
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
    .map(e => e.name)"""
ON_DUTY = {"work_start": "00:00", "work_end": "23:59", "work_days": "1234567"}


async def start_console(p: Pipeline) -> ServiceProcess:
    """Start the console process beside the pipeline's four services."""
    env = p.env()
    env.update(
        {
            "BOKVAR_CONSOLE_PORT": env["BOKVAR_CONSOLE_PORT"],
            "BOKVAR_CONSOLE_CASES_URL": p.url("cases"),
            "BOKVAR_CONSOLE_NOTIFIER_URL": p.url("notifier"),
            "BOKVAR_CONSOLE_RULES_URL": p.url("rules"),
            "BOKVAR_CONSOLE_INGEST_URL": p.url("ingest"),
        }
    )
    proc = ServiceProcess("console", env, log_dir=p.var_dir / "logs")
    proc.start()
    p.procs["console"] = proc
    await proc.wait_healthy(path="/readyz")
    return proc


async def seed(p: Pipeline) -> None:
    """Staff directory, org settings, a simulated month, and two households to work with."""
    service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    async with httpx.AsyncClient(base_url=p.url("notifier"), headers=service) as notifier:
        for staff_id, lead in (("anna", False), ("lars", True)):
            body = {"name": staff_id.title(), "phone": "+46709990000", "team": "team-0"}
            put = await notifier.put(
                f"/v1/staff/{staff_id}", json={**body, **ON_DUTY, "is_lead": lead}
            )
            assert put.status_code == 200, put.text
    admin = encode_token(
        {"sub": "seed", "role": "admin"}, JWT_SECRET, now=p.clock_start, ttl=timedelta(days=1)
    )
    async with httpx.AsyncClient(
        base_url=p.url("cases"), headers={"Authorization": f"Bearer {admin}"}
    ) as cases:
        homes_etc = {"home_count": 62, "baseline_year": 2019, "baseline_evictions": 1}
        put = await cases.put(f"/v1/orgs/{ORG}/settings", json=homes_etc)
        assert put.status_code == 200, put.text
    key = await api_key(p, ORG)
    homes = households(
        60,
        seed=7,
        shares=Shares(late=0.2, partial=0.05, stops_paying=0.1, disturbance=0.05),
        org=ORG,
        start=date(2026, 3, 10),
    )
    async with httpx.AsyncClient(base_url=p.url("ingest"), headers={"X-API-Key": key}) as ingest:
        await post(ingest, "/v1/leases", {**lease("L-KF", phone=PHONE), "team": "team-0"})
        await post(ingest, "/v1/leases", {**lease("L-ST", phone=PHONE), "team": "team-0"})
        # The notifier routes tasks by the lease's team: let it learn the leases first.
        assert await p.drained()
        await post(ingest, "/v1/ledger/charges", charge("L-KF", "2026-03"))
        for k in range(2):
            complaint = {
                "event_id": f"cmp-L-ST-{k}",
                "lease_id": "L-ST",
                "complaint_id": f"C-ST-{k}",
                "category": "disturbance",
                "occurred_at": f"2026-03-0{3 + 3 * k}T22:30:00+01:00",
                "description": "Hög musik sent på kvällen.",
            }
            await post(ingest, "/v1/complaints", complaint)
    # The ERP's history, then its watermark (all payments booked through yesterday): it comes
    # after every charge above, so the late stages of 9 March are not held any longer.
    events = history(homes, months=1, today=date(2026, 3, 10), seed=7)
    pushed = await push_backfill(p.url("ingest"), key, events, through=date(2026, 3, 9))
    assert pushed.rejected == 0, pushed.reasons


async def sign_in(page: Any, base: str, sub: str, role: str, municipality: str = "0180") -> None:
    """Sign in through the marked dev sign-in."""
    await page.goto(base + "/login")
    await page.fill("#sub", sub)
    await page.select_option("#role", role)
    await page.fill("#org", ORG)
    await page.fill("#municipality", municipality)
    await click(page, "section.dev button[type=submit]")


async def sign_out(page: Any) -> None:
    """Sign out with the header's form."""
    await click(page, "header form button")


async def click(page: Any, selector: str) -> None:
    """Click a link or submit button and wait for the new page (boosted by htmx or not)."""
    await page.evaluate("document.querySelector('main').dataset.stale = '1'")
    await page.click(selector)
    await page.wait_for_selector("main:not([data-stale])")


async def shot(page: Any, directory: Path, name: str) -> None:
    """Save a full-page screenshot."""
    await page.screenshot(path=str(directory / f"{name}.png"), full_page=True)


async def test_every_role_works_the_console_over_the_running_pipeline(
    browser: Any, start_pipeline: Callable[..., Any], screenshot_dir: Path
) -> None:
    p: Pipeline = await start_pipeline(local(2026, 3, 10, 10, 0), **SECRETS)
    console = await start_console(p)
    base = console.url
    async with Watcher(p.bootstrap_servers, [CASE_EVENTS, NOTIFICATION_EVENTS]) as w:
        await seed(p)
        case_id = (
            await w.wait(lambda d: isinstance(d, CaseOpened) and d.lease_id == "L-KF", what="case")
        )[0].case_id
        await w.wait(
            lambda d: isinstance(d, CaseOpened) and d.lease_id == "L-ST", what="disturbance case"
        )
        task_id = (
            await w.wait(
                lambda d: (
                    isinstance(d, TaskChanged) and d.lease_id == "L-KF" and d.kind == "phone_call"
                ),
                what="call task",
            )
        )[0].task_id
        assert await p.drained()

    context = await browser.new_context(locale="sv-SE")
    urls: list[str] = []
    context.on("request", lambda request: urls.append(request.url))
    page = await context.new_page()
    page.set_default_timeout(15_000)
    await page.goto(base + "/login")
    assert "ENDAST FÖR UTVECKLING" in await page.inner_text("section.dev")
    await shot(page, screenshot_dir, "01-sign-in")

    # Rent officer: my tasks, due first; a task with the ledger and a call link; the outcome.
    await sign_in(page, base, "anna", "landlord_staff")
    assert page.url.endswith("/tasks")
    assert f"/tasks/{task_id}" in await page.content(), (task_id, await page.inner_text("main"))
    await shot(page, screenshot_dir, "02-my-tasks")
    await click(page, f"a[href='/tasks/{task_id}']")
    assert await page.locator(f"a[href='tel:{PHONE}']").count() == 1
    assert "2026-03" in await page.inner_text("#ledger-title + table")
    assert await page.evaluate(UNLABELLED) == []
    await shot(page, screenshot_dir, "03-task")
    await click(page, "#outcome form.inline button")
    await page.check("input[value=payment_promised]")
    await page.fill("#promised_date", "2026-03-20")
    await click(page, "#outcome form[action$=complete] button[type=submit]")
    assert "Betalning utlovad" in await page.inner_text("dl.facts")
    service = {"Authorization": f"Bearer {SERVICE_TOKEN}"}
    async with httpx.AsyncClient(base_url=p.url("notifier"), headers=service) as notifier:
        task = (await notifier.get(f"/v1/tasks/{task_id}")).json()
    assert (task["status"], task["outcome"], task["promised_date"]) == (
        "completed",
        "payment_promised",
        "2026-03-20",
    )

    # The case: consent, a referral it allows, the statutory notice, Kronofogden refused.
    await page.goto(f"{base}/cases/{case_id}")
    await page.check("#consents input[value=budget_debt_advice]")
    await page.fill("#document_ref", "SAMTYCKE-2026-17")
    await click(page, "#consents form.record button[type=submit]")
    assert "✓" in await page.inner_text("#consents table")
    await refer(page, "budget_debt_advice", "", None)
    await refer(page, "social_services", "termination_notice", "8125")
    rows = await page.inner_text("#referrals table")
    assert "Budget- och skuldrådgivningen" in rows and "JB 12:44" in rows
    await page.fill("#note_text", "Hyresgästen lovar att betala den 20 mars.")
    await click(page, "#note-form button[type=submit]")
    timeline = await page.inner_text("table.timeline")
    assert "lovar att betala" in timeline
    # signal reasons in the page's language (Swedish first), not the English one
    assert "Hyran för 2026-03" in timeline and "Rent for" not in timeline
    await refer(page, "kronofogden", "", None)
    refusal = await page.inner_text("#refusal")
    assert "Uppsägning skickad" in refusal and "Återvinningsmeddelande delgivet" in refusal
    assert await page.evaluate(UNLABELLED) == []
    await shot(page, screenshot_dir, "04-case-kronofogden-refused")

    # The disturbance case shows the three tracks, the legal one last.
    await page.goto(f"{base}/cases")
    await click(page, "tr:has-text('L-ST') a")
    names = await page.locator(".track h3").all_inner_texts()
    assert names[-1].startswith("Hyresrättsligt spår")
    await refer(page, "social_services", "disturbance_warning", None)
    await page.fill("#meeting_outcome", "Överenskommelse: ingen musik efter 22.")
    await click(page, "#meetings form.record button[type=submit]")
    authority = await page.inner_text(".track-authority")
    assert "Pågår" in authority and "Underrättelse om störning" in authority
    assert "Inte påbörjat" in await page.inner_text(".track-legal")
    await shot(page, screenshot_dir, "05-disturbance-tracks")

    # The dashboard draws the chart server-side; the CSV comes from the cases report API.
    await page.goto(f"{base}/dashboard?start=2026-02-01&end=2026-03-10")
    await page.wait_for_selector("#target-chart svg rect.bar")
    assert await page.locator("#funnel-chart svg rect.bar").count() == 5
    assert int(await page.inner_text("dl.figures div:nth-child(2) dd")) > 0
    assert await page.evaluate(UNLABELLED) == []
    await shot(page, screenshot_dir, "06-dashboard")
    csv = await page.request.get(f"{base}/dashboard.csv?start=2026-02-01&end=2026-03-10")
    assert csv.ok and "households_flagged_late" in await csv.text()
    await page.goto(f"{base}/cases/{case_id}?lang=en")
    assert "Referrals" in await page.inner_text("#ref-title")
    await shot(page, screenshot_dir, "07-case-english")
    await page.goto(f"{base}/tasks?lang=sv")
    await sign_out(page)

    # Bosocial coordinator and admin: tasks and dashboard.
    await sign_in(page, base, "lars", "bosocial")
    assert page.url.endswith("/tasks")
    await sign_out(page)
    await sign_in(page, base, "admin-1", "admin")
    assert "L-KF" in await page.inner_text("main"), "admins see every open task"
    await page.goto(f"{base}/dashboard?org={ORG}&start=2026-02-01&end=2026-03-10")
    await page.wait_for_selector("#funnel-chart svg")
    await sign_out(page)

    # Social services: the covered case with its statutory notice, and nothing of staff work.
    await sign_in(page, base, "soc-1", "social_services")
    assert page.url.endswith("/social")
    assert "JB 12:44" in await page.inner_text("main table")
    await shot(page, screenshot_dir, "08-social-services")
    await page.goto(f"{base}/cases/{case_id}")
    assert "Budget- och skuldrådgivningen" not in await page.inner_text("#referrals")
    assert await page.locator("form.record").count() == 0
    response = await page.goto(f"{base}/tasks")
    assert response is not None and response.status == 403
    await sign_out(page)

    # Budget and debt advice: the consented case, read only.
    await sign_in(page, base, "bud-1", "budget_debt_advice")
    assert page.url.endswith("/cases")
    await click(page, f"a[href='/cases/{case_id}']")
    assert await page.locator("form.record").count() == 0
    await shot(page, screenshot_dir, "09-debt-advice")
    await sign_out(page)

    await read_without_javascript(browser, base, case_id)

    # No personal data in URLs (the phone is only a tel: link in the page) or the console log.
    assert urls and not [u for u in urls if PHONE[3:] in u or "Test" in u]
    log = (p.var_dir / "logs" / "console.log").read_text()
    assert PHONE[3:] not in log and "Testsson" not in log


async def read_without_javascript(browser: Any, base: str, case_id: str) -> None:
    """Every page reads without JavaScript: plain form posts and full page loads."""
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    await page.goto(base + "/login")
    await page.fill("#sub", "anna")
    async with page.expect_navigation():
        await page.click("section.dev button[type=submit]")
    assert page.url.endswith("/tasks") and "L-KF" in await page.inner_text("main")
    await page.goto(f"{base}/cases/{case_id}")
    assert "Budget- och skuldrådgivningen" in await page.inner_text("#referrals table")
    await page.goto(f"{base}/dashboard?start=2026-02-01&end=2026-03-10")
    assert await page.locator("#funnel-chart svg rect").count() == 5
    await context.close()


async def refer(page: Any, recipient: str, notice: str, amount_kr: str | None) -> None:
    """Fill and send the referral form; wait for the page to come back."""
    await page.select_option("#recipient", recipient)
    await page.select_option("#notice", notice)
    if amount_kr is not None:
        await page.fill("#amount_owed_kr", amount_kr)
    await click(page, "#referrals form.record button[type=submit]")
