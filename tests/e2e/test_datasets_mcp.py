"""Datasets through the MCP client: import a messy CSV of support chats, list, read the
resource; bad input answered with the field and the fix."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from mcp import Client, StdioServerParameters

pytestmark = pytest.mark.e2e


def support_chats_csv(path: Path) -> None:
    rows = ["ticket,messages"]
    for i in range(12):
        chat = [{"role": "user", "content": f"My order #{i} is late"}, {"role": "assistant", "content": f"Sorry! Order #{i} ships today."}]
        rows.append(f'{i},"' + json.dumps(chat).replace('"', '""') + '"')
    rows.append('12,"not, a chat",extra')  # a ragged line
    path.write_text("\n".join(rows) + "\n")


async def test_import_list_and_read_over_stdio(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    home.mkdir()
    support_chats_csv(home / "support.csv")
    params = StdioServerParameters(command=sys.executable, args=["-m", "forge_mcp", "--home", str(home), "stdio"])
    async with Client(params) as client:
        imported = await client.call_tool("dataset_import", {"path": "support.csv", "name": "support-chats"})
        again = await client.call_tool("dataset_import", {"path": "support.csv", "name": "support-chats"})
        listed = await client.call_tool("dataset_list", {})
        resource = await client.read_resource("forge://datasets/support-chats@v1")
        overview = await client.call_tool("forge_overview", {})
    assert not imported.is_error, imported.content
    result = imported.structured_content
    assert result["dataset"]["id"] == "support-chats@v1" and result["dataset"]["kind"] == "messages"
    assert result["dataset"]["rows"] == 12 and result["bad_lines"] == 1
    assert result["bad_line_examples"][0] == {"line": "14", "reason": "3 fields where the header has 2; check quoting"}
    assert again.structured_content["deduplicated"] is True
    assert [d["id"] for d in listed.structured_content["datasets"]] == ["support-chats@v1"]
    assert json.loads(resource.contents[0].text)["fingerprint"] == result["dataset"]["fingerprint"]
    assert overview.structured_content["workspace"]["datasets"] == 1


async def test_bad_dataset_input_names_the_field(server) -> None:  # noqa: ANN001
    async with Client(f"{server.url}/mcp/") as client:
        traversal = await client.call_tool("dataset_import", {"path": "../../etc/passwd", "name": "x"})
        bad_name = await client.call_tool("dataset_import", {"path": "a.jsonl", "name": "Not OK"})
        bad_format = await client.call_tool("dataset_import", {"path": "a.jsonl", "name": "x", "format": "xlsx"})
        missing = await client.call_tool("dataset_import", {"path": "nope.jsonl", "name": "x"})
    assert traversal.is_error and "argument 'path'" in traversal.content[0].text and "/etc" not in traversal.content[0].text
    assert bad_name.is_error and "name: use 1-64 lowercase" in bad_name.content[0].text
    assert bad_format.is_error and "'format'" in bad_format.content[0].text
    assert missing.is_error and "path: nothing exists there" in missing.content[0].text


async def test_inspect_tells_what_is_wrong(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    home.mkdir()
    chats = [
        {"messages": [{"role": "user", "content": f"Where is parcel {i}? It was due on Monday and nothing came."},
                      {"role": "assistant", "content": f"Parcel {i} is at the depot and will be delivered tomorrow."}]}
        for i in range(30)
    ]  # fmt: skip
    chats.append(chats[2])  # an exact duplicate
    near = json.loads(json.dumps(chats[4]))
    near["messages"][1]["content"] += " Sorry!"
    chats.append(near)  # a near duplicate
    chats.append({"messages": [{"role": "user", "content": "mail me: ann@example.org, call +1 (415) 555-2671"},
                               {"role": "assistant", "content": "Noted."}]})  # fmt: skip
    chats.append({"messages": [{"role": "user", "content": "hello?"}]})  # no assistant turn
    (home / "chats.jsonl").write_text("".join(json.dumps(c) + "\n" for c in chats))
    params = StdioServerParameters(command=sys.executable, args=["-m", "forge_mcp", "--home", str(home), "stdio"])
    async with Client(params) as client:
        imported = await client.call_tool("dataset_import", {"path": "chats.jsonl", "name": "parcels"})
        inspected = await client.call_tool("dataset_inspect", {"dataset": "parcels", "histogram": True, "samples": 2})
    assert not inspected.is_error, inspected.content
    # The row without an assistant turn does not fit the kind: the import skips and names it.
    assert imported.structured_content["unfit_rows"] == 1 and imported.structured_content["bad_line_examples"] == [
        {"line": "34", "reason": "does not fit messages: 'messages' has no assistant turn to learn from"}]  # fmt: skip
    report = inspected.structured_content
    assert report["invalid_rows"] == 0 and report["invalid_examples"] == []
    assert report["duplicates"]["exact_rows"] == 1 and report["duplicates"]["exact_examples"] == [["3", "31"]]
    assert report["duplicates"]["near_groups"] == 1 and report["duplicates"]["near_examples"] == [["5", "32"]]
    assert report["pii"] == {"email": 1, "phone": 1} and report["rows_with_pii"] == 1
    assert report["chat"]["roles"] == {"user": 32, "assistant": 32}
    assert len(report["samples"]) == 2 and report["sampled"] is False
    assert [c.type for c in inspected.content] == ["text", "image"]
