"""Control characters in the notifier API's path, query or body get 422 (issue 11)."""

from __future__ import annotations

import httpx

from tests.notifier.test_api import AUTH, client

__all__ = ["client"]


async def test_control_characters_are_422_naming_the_field(client: httpx.AsyncClient) -> None:
    path = await client.get("/v1/staff/s%001", headers=AUTH)
    assert path.status_code == 422, path.text
    assert path.json()["detail"][0]["field"] == "path"
    query = await client.get("/v1/tasks", params={"lease_id": "L\x001"}, headers=AUTH)
    assert [d["field"] for d in query.json()["detail"]] == ["query.lease_id"]
    staff = {"name": "Ann\u0000a", "phone": "+46701234567", "team": "north"}
    body = await client.put("/v1/staff/s1", json=staff, headers=AUTH)
    assert body.status_code == 422
    assert [d["field"] for d in body.json()["detail"]] == ["body.name"]
    staff["name"] = "Anna"
    assert (await client.put("/v1/staff/s1", json=staff, headers=AUTH)).status_code == 200
