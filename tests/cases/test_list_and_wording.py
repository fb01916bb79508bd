"""GET /v1/cases counts every case the caller may see; refusals read as sentences."""

from __future__ import annotations

from tests.cases.conftest import App, open_case


async def test_total_is_every_visible_case_not_the_page_length(cases_app: App) -> None:
    for n in range(3):
        await open_case(cases_app.database, f"L-{n}")
    await open_case(cases_app.database, "L-other", org="org2")
    staff = cases_app.token("landlord_staff")
    first = (await cases_app.client.get("/v1/cases?limit=2", headers=staff)).json()
    assert (len(first["items"]), first["total"]) == (2, 3)
    rest = (await cases_app.client.get("/v1/cases?limit=2&offset=2", headers=staff)).json()
    assert (len(rest["items"]), rest["total"]) == (1, 3)
    admin = cases_app.token("admin", org=None)
    every = (await cases_app.client.get("/v1/cases?limit=1", headers=admin)).json()
    assert (len(every["items"]), every["total"]) == (1, 4)
    # Social services see no case here (no consent, no statutory notice): total says so too.
    social = cases_app.token("social_services")
    none = (await cases_app.client.get("/v1/cases?limit=1", headers=social)).json()
    assert (none["items"], none["total"]) == ([], 0)


async def test_refusal_names_the_case_once(cases_app: App) -> None:
    case_id = await open_case(cases_app.database, "L-1")
    social = cases_app.token("social_services")
    denied = await cases_app.client.get(f"/v1/cases/{case_id}", headers=social)
    assert denied.status_code == 403
    assert denied.json()["detail"] == "no access to this case for role social_services"
    notes = await cases_app.client.get(f"/v1/cases/{case_id}/notes", headers=social)
    assert notes.json()["detail"] == "no access to the notes of this case for role social_services"
