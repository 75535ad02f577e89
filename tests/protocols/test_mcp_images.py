"""The MCP adapter looks for images only in result types that can carry one (known once per
type), so every other result skips a model_dump; a type that can carry one is never missed."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from forge_mcp.capabilities import ImageAttachment
from forge_mcp.jobs.models import Job
from forge_mcp.protocols.mcp_server import _may_carry_images, _with_images
from forge_mcp.tools import all_toolsets


class Chart(BaseModel):
    chart: ImageAttachment | None = None


class Described(BaseModel):
    chart: Annotated[ImageAttachment, Field(description="a chart")]


class Loose(BaseModel):
    anything: Any = None


class Listed(BaseModel):
    charts: list[ImageAttachment] = []  # split_images looks at top-level values only
    counts: dict[str, int] = {}


def test_types_that_can_carry_an_image_are_known() -> None:
    assert _may_carry_images(Chart) and _may_carry_images(Described) and _may_carry_images(Loose)
    assert not _may_carry_images(Listed) and not _may_carry_images(Job)


def test_every_tool_whose_result_declares_an_image_is_looked_at() -> None:
    outputs = {cap.output for toolset in all_toolsets() for cap in toolset.capabilities}
    declaring = {o for o in outputs if any("ImageAttachment" in str(f.annotation) for f in o.model_fields.values())}
    assert declaring  # job_metrics, dataset_inspect, model_compare_report
    assert all(_may_carry_images(o) for o in declaring)


def test_an_image_still_becomes_image_content_and_others_pass_through() -> None:
    image = ImageAttachment(data_base64="iVBORw0KGgo=", description="loss")
    out = _with_images(Chart(chart=image))
    assert [c.type for c in out.content] == ["text", "image"]
    assert out.structured_content["chart"]["data_base64"] == "iVBORw0KGgo="
    plain = Listed()
    assert _with_images(plain) is plain
