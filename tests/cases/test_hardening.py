"""Control characters in the cases API's path, query or body get 422 (issue 11)."""

from __future__ import annotations

from tests.cases.conftest import App, open_case


async def test_control_characters_are_422_naming_the_field(cases_app: App) -> None:
    case_id = await open_case(cases_app.database)
    headers = cases_app.token("admin")
    path = await cases_app.client.get(f"/v1/cases/{case_id}%00", headers=headers)
    assert path.status_code == 422, path.text
    assert path.json()["detail"][0]["field"] == "path"
    query = await cases_app.client.get("/v1/cases", params={"status": "\x00"}, headers=headers)
    assert [d["field"] for d in query.json()["detail"]] == ["query.status"]
    note = await cases_app.client.post(
        f"/v1/cases/{case_id}/notes", json={"text": "called\u0000"}, headers=headers
    )
    assert note.status_code == 422
    assert [d["field"] for d in note.json()["detail"]] == ["body.text"]
    ok = await cases_app.client.get(f"/v1/cases/{case_id}", headers=headers)
    assert ok.status_code == 200
