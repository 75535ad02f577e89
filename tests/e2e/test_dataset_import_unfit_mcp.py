"""dataset_import through the MCP client on a live server: a ShareGPT file with five bad
lines — two that do not parse, three that parse but are not ShareGPT — gets all five
named by line number, and only the good rows become the dataset (issue 11)."""

from __future__ import annotations

import pytest
from mcp import Client

from forge_mcp.server_process import ServerProcess
from tests.datasets.test_importer_unfit_rows import BAD, sharegpt_file

pytestmark = pytest.mark.e2e


async def test_every_line_that_does_not_fit_is_named_at_import(server: ServerProcess) -> None:
    server.home.mkdir(parents=True, exist_ok=True)
    sharegpt_file(server.home / "sharegpt.jsonl")
    async with Client(f"{server.url}/mcp/") as client:
        imported = await client.call_tool("dataset_import", {"path": "sharegpt.jsonl", "name": "sharegpt-five-bad"})
        resource = await client.read_resource("forge://datasets/sharegpt-five-bad@v1")
    assert not imported.is_error, imported.content
    result = imported.structured_content
    assert result["dataset"]["kind"] == "sharegpt" and result["dataset"]["rows"] == 45
    assert (result["bad_lines"], result["unfit_rows"]) == (2, 3)
    assert [b["line"] for b in result["bad_line_examples"]] == [str(n) for n in sorted(BAD)]
    assert result["bad_line_examples"][1] == {
        "line": "8", "reason": "does not fit sharegpt: 'conversations' must be a non-empty list of {from, value} turns"}  # fmt: skip
    assert '"unfit_rows": 3' in resource.contents[0].text  # type: ignore[union-attr]
