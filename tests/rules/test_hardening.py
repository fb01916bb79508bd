"""Control characters in the path or query of the rules API get 422 naming where (issue 11)."""

from __future__ import annotations

import httpx

from tests.rules.test_api import TOKEN, client

__all__ = ["client"]


async def test_nul_in_path_or_query_is_422_not_500(client: httpx.AsyncClient) -> None:
    path = await client.get("/v1/leases/L%002/status", headers=TOKEN)
    assert path.status_code == 422, path.text
    assert path.json()["error"] == "ValidationError"
    assert path.json()["detail"][0]["field"] == "path"
    query = await client.get("/v1/leases/L2/status", params={"at": "\x00"}, headers=TOKEN)
    assert query.status_code == 422
    assert [d["field"] for d in query.json()["detail"]] == ["query.at"]
    assert (await client.get("/v1/leases/L2/status", headers=TOKEN)).status_code == 200
