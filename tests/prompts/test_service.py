"""PromptService on a real workspace database, called in-process as the tools, the MCP prompts and
the operator call it: versions and the dedup of an identical save, lists, diffs, renders whose
missing or unused variables are named, refs (name@vN), and the packaged operator-system prompt:
seeded once, replaced by a newer packaged text only while nobody saved their own, saved only by
an admin and only without variables."""

from __future__ import annotations

import pytest

from forge_mcp.app import ForgeApp
from forge_mcp.errors import Forbidden, InvalidArguments, NotFound
from forge_mcp.prompts.defaults import OPERATOR_SYSTEM, SEEDED_BY, PromptDefault
from forge_mcp.prompts.limits import MAX_TEMPLATE_CHARS
from forge_mcp.prompts.repository import PromptRepository
from forge_mcp.prompts.service import PromptService
from forge_mcp.prompts.templates import TemplateEngine
from forge_mcp.security.principal import Principal

ALICE = Principal("alice", frozenset({"train"}))
READER = Principal("reader", frozenset({"read"}))
ADMIN = Principal("root", frozenset({"admin"}))
V1 = "Hello {{ customer }},\nthanks for writing about {{ topic }}.\n"
V2 = "Hello {{ customer }},\nthanks for writing about {{ topic }}.\nAnswer in {{ language }}.\n"


async def test_saves_number_versions_and_the_same_template_returns_the_latest(app: ForgeApp) -> None:
    prompts = app.services.prompts
    first = await prompts.save(ALICE, "support-reply", V1, "First draft")
    again = await prompts.save(ALICE, "support-reply", V1, "Same text, another message")
    second = await prompts.save(ALICE, "support-reply", V2, "  Answer in the customer's language  ")
    back = await prompts.save(ALICE, "support-reply", V1, "Back to the first")  # an older text is a new version
    assert (first.ref, first.version, first.created, first.variables) == (
        "support-reply@v1",
        1,
        True,
        ["customer", "topic"],
    )
    assert (again.ref, again.created, again.message) == ("support-reply@v1", False, "First draft")
    assert (second.ref, second.message, second.variables) == ("support-reply@v2", "Answer in the customer's language",
                                                               ["customer", "topic", "language"])  # fmt: skip
    assert (back.ref, back.created) == ("support-reply@v3", True)
    listed = await prompts.list("support-reply")
    assert [v.ref for v in listed.versions] == ["support-reply@v3", "support-reply@v2", "support-reply@v1"]
    assert [v.message for v in listed.versions][1:] == ["Answer in the customer's language", "First draft"]
    assert listed.versions[0].chars == len(V1) and listed.versions[0].saved_by == "alice"
    [summary] = listed.prompts
    assert (summary.latest, summary.versions, summary.message, summary.variables) == (3, 3, "Back to the first",
                                                                                    ["customer", "topic"])  # fmt: skip


async def test_the_list_shows_every_prompt_by_its_latest_version(app: ForgeApp) -> None:
    prompts = app.services.prompts
    await prompts.save(ALICE, "b-prompt", "B {{ x }}", "b1")
    await prompts.save(ALICE, "a-prompt", "A", "a1")
    await prompts.save(ALICE, "b-prompt", "B {{ x }} {{ y }}", "b2")
    everything = await prompts.list()
    assert [p.ref for p in everything.prompts] == ["a-prompt@v1", "b-prompt@v2", f"{OPERATOR_SYSTEM}@v1"]
    assert everything.total == 3 and everything.versions == []
    assert [p.ref for p in (await prompts.list(limit=1)).prompts] == ["a-prompt@v1"]
    with pytest.raises(NotFound, match=r"^name: no prompt 'c-prompt'; prompt_list shows the prompts"):
        await prompts.list("c-prompt")


async def test_a_diff_is_unified_from_the_version_before_by_default(app: ForgeApp) -> None:
    prompts = app.services.prompts
    await prompts.save(ALICE, "support-reply", V1, "v1")
    await prompts.save(ALICE, "support-reply", V2, "v2")
    await prompts.save(ALICE, "support-reply", V2.replace("Hello", "Hi"), "v3")
    latest = await prompts.diff("support-reply")
    assert (latest.from_ref, latest.to_ref, latest.changed) == ("support-reply@v2", "support-reply@v3", True)
    assert latest.diff.splitlines()[:3] == ["--- support-reply@v2", "+++ support-reply@v3", "@@ -1,3 +1,3 @@"]
    assert "-Hello {{ customer }}," in latest.diff and "+Hi {{ customer }}," in latest.diff
    assert (latest.added_lines, latest.removed_lines, latest.variables_added) == (1, 1, [])
    chosen = await prompts.diff("support-reply", from_version=1, to_version=2)
    assert (chosen.added_lines, chosen.removed_lines, chosen.variables_added, chosen.variables_removed) == (
        1,
        0,
        ["language"],
        [],
    )
    backwards = await prompts.diff("support-reply@v1", from_version=3)  # a ref names the to_version
    assert (backwards.from_ref, backwards.to_ref, backwards.variables_removed) == ("support-reply@v3", "support-reply@v1",
                                                                                   ["language"])  # fmt: skip
    same = await prompts.diff("support-reply", from_version=2, to_version=2)
    assert (same.changed, same.diff) == (False, "")
    with pytest.raises(NotFound, match=r"^to_version: support-reply has no v9; its versions are v1 to v3$"):
        await prompts.diff("support-reply", to_version=9)
    with pytest.raises(NotFound, match=r"^from_version: support-reply has no v7; its versions are v1 to v3$"):
        await prompts.diff("support-reply", from_version=7)
    with pytest.raises(InvalidArguments, match=r"^from_version: support-reply@v1 is the first version, there is none"):
        await prompts.diff("support-reply", to_version=1)
    with pytest.raises(NotFound, match=r"^name: no prompt 'nothing'"):
        await prompts.diff("nothing")


async def test_render_needs_each_variable_and_no_other_and_names_them(app: ForgeApp) -> None:
    prompts = app.services.prompts
    await prompts.save(ALICE, "support-reply", V1, "v1")
    await prompts.save(ALICE, "support-reply", V2, "v2")
    rendered = await prompts.render("support-reply", {"customer": "Ann", "topic": "billing", "language": "French"})
    assert rendered.text == "Hello Ann,\nthanks for writing about billing.\nAnswer in French.\n"
    assert (rendered.ref, rendered.message, rendered.chars) == ("support-reply@v2", "v2", len(rendered.text))
    older = await prompts.render("support-reply", {"customer": "Ann", "topic": "billing"}, version=1)
    assert (
        older.ref == "support-reply@v1"
        and await prompts.render("support-reply@v1", {"customer": "Ann", "topic": "billing"}) == older
    )
    with pytest.raises(InvalidArguments) as missing:
        await prompts.render("support-reply", {"customer": "Ann"})
    assert missing.value.message == ("variables: missing 'topic', 'language'; support-reply@v2 expects 'customer', "
                                     "'topic', 'language'")  # fmt: skip
    with pytest.raises(InvalidArguments) as extra:
        await prompts.render("support-reply", {"customer": "Ann", "topic": "x", "language": "y", "tone": "warm"})
    assert extra.value.message == ("variables: not used by it: 'tone'; support-reply@v2 expects 'customer', 'topic', "
                                   "'language'")  # fmt: skip
    with pytest.raises(InvalidArguments) as both:
        await prompts.render("support-reply@v1", {"custmer": "Ann", "topic": "x"})
    assert (
        both.value.message
        == "variables: missing 'customer'; not used by it: 'custmer'; support-reply@v1 expects 'customer', 'topic'"
    )
    with pytest.raises(
        InvalidArguments, match=r"^variables: not used by it: 'x'; operator-system@v1 expects no variables$"
    ):
        await prompts.render(OPERATOR_SYSTEM, {"x": 1})
    with pytest.raises(NotFound, match=r"^version: support-reply has no v5; its versions are v1 to v2$"):
        await prompts.render("support-reply", {}, version=5)
    with pytest.raises(
        InvalidArguments, match=r"^version: 2 disagrees with 'support-reply@v1'; give the version once$"
    ):
        await prompts.render("support-reply@v1", {}, version=2)


async def test_a_variable_with_a_default_may_be_left_out(app: ForgeApp) -> None:
    prompts = app.services.prompts
    saved = await prompts.save(ALICE, "greeting", "{{ greeting|default('Hello') }} {{ customer }}", "v1")
    assert (saved.variables, saved.optional) == (["greeting", "customer"], ["greeting"])
    assert (await prompts.render("greeting", {"customer": "Ann"})).text == "Hello Ann"
    assert (await prompts.render("greeting", {"customer": "Ann", "greeting": "Hi"})).text == "Hi Ann"
    with pytest.raises(InvalidArguments) as caught:
        await prompts.render("greeting", {"greting": "Hi"})
    assert caught.value.message == ("variables: missing 'customer'; not used by it: 'greting'; greeting@v1 expects "
                                    "'greeting', 'customer' (optional: 'greeting')")  # fmt: skip
    [summary] = (await prompts.list("greeting")).prompts
    assert summary.optional == ["greeting"] and (await prompts.list("greeting")).versions[0].optional == ["greeting"]


async def test_a_render_error_names_the_version_and_line(app: ForgeApp) -> None:
    prompts = app.services.prompts
    await prompts.save(ALICE, "lookup", "Order:\n{{ order.id }}", "v1")
    with pytest.raises(InvalidArguments) as caught:
        await prompts.render("lookup", {"order": "not an object"})
    assert caught.value.message.startswith("lookup@v1: line 2: 'str object' has no attribute 'id'")


async def test_what_save_refuses_is_named(app: ForgeApp) -> None:
    prompts = app.services.prompts
    cases = {
        ("Support Reply", "x", "m"): "name: 'Support Reply' is not a prompt name; use a lowercase slug",
        ("ok", "   ", "m"): "template: it is empty; give the Jinja2 template",
        ("ok", "x", " "): "message: it is empty; give what this version changes",
        ("ok", "x" * (MAX_TEMPLATE_CHARS + 1), "m"): "template: 100,001 characters is over the limit of 100,000",
        ("ok", "bad \ud800", "m"): "template: it holds a lone surrogate",
        ("ok", "Hi {{ name", "m"): "template: line 1: unexpected end of template",
        # Without variables a template renders the same every time: its error shows at save.
        (
            "ok",
            "Hi {{ ''.__class__ }}",
            "m",
        ): "template: line 1: the sandbox refused it: access to attribute '__class__'",
    }
    for (name, template, message), expected in cases.items():
        with pytest.raises(InvalidArguments) as caught:
            await prompts.save(ALICE, name, template, message)
        assert caught.value.message.startswith(expected), caught.value.message
    assert (await prompts.list()).total == 1  # operator-system only: nothing refused was stored


async def test_operator_system_is_seeded_once_and_guarded(app: ForgeApp) -> None:
    from forge_mcp.agents.operator import SYSTEM_PROMPT

    prompts = app.services.prompts
    seeded = await prompts.list(OPERATOR_SYSTEM)
    assert [(v.ref, v.saved_by, v.variables) for v in seeded.versions] == [(f"{OPERATOR_SYSTEM}@v1", SEEDED_BY, [])]
    assert (await prompts.render(OPERATOR_SYSTEM)).text == SYSTEM_PROMPT
    await prompts.seed_defaults()  # every start seeds: the second time writes nothing
    assert (await prompts.list(OPERATOR_SYSTEM)).prompts[0].versions == 1
    with pytest.raises(Forbidden, match=r"^a new version of operator-system \(the chat operator's system prompt, for "
                                        r"every caller\) needs the 'admin' scope"):  # fmt: skip
        await prompts.save(ALICE, OPERATOR_SYSTEM, "Be terse.", "terse")
    with pytest.raises(InvalidArguments, match=r"^template: operator-system is the chat operator's system prompt and is "
                                               r"rendered with no variables, but this template uses 'user'; write"):  # fmt: skip
        await prompts.save(ADMIN, OPERATOR_SYSTEM, "Help {{ user }}.", "personal")
    saved = await prompts.save(ADMIN, OPERATOR_SYSTEM, SYSTEM_PROMPT + "\n- Answer in French.", "French")
    assert saved.ref == f"{OPERATOR_SYSTEM}@v2"
    assert (await prompts.render(OPERATOR_SYSTEM)).text.endswith("- Answer in French.")


async def test_a_newer_packaged_default_replaces_only_an_untouched_one(app: ForgeApp) -> None:
    def service(text: str) -> PromptService:
        default = PromptDefault("house-style", text, "packaged", role="the house style")
        return PromptService(PromptRepository(app.store), TemplateEngine(), [default])

    await service("Be brief.").seed_defaults()
    await service("Be brief.").seed_defaults()
    await service("Be brief and kind.").seed_defaults()  # an upgrade with a new packaged text
    versions = (await app.services.prompts.list("house-style")).versions
    assert [(v.version, v.saved_by) for v in versions] == [(2, SEEDED_BY), (1, SEEDED_BY)]
    upgraded = service("Be brief and kind.")
    await upgraded.save(ADMIN, "house-style", "Be very brief.", "ours")
    await service("Be brief, kind and exact.").seed_defaults()  # someone's own version stays the latest
    assert (await upgraded.render("house-style")).text == "Be very brief."
    assert (await app.services.prompts.list("house-style")).prompts[0].versions == 3


async def test_listeners_hear_each_new_version_only(app: ForgeApp) -> None:
    heard: list[str] = []
    prompts = app.services.prompts
    prompts.add_listener(heard.append)
    await prompts.save(ALICE, "a", "A", "1")
    await prompts.save(ALICE, "a", "A", "same")
    await prompts.save(ALICE, "a", "AA", "2")
    assert heard == ["a", "a"]


async def test_reading_needs_no_more_than_read_and_saving_needs_train(app: ForgeApp) -> None:
    """The tools' scopes (the runner checks them): a read key renders, it does not save."""
    await app.runner.run("prompt_save", {"name": "a", "template": "A {{ x }}", "message": "1"}, ALICE, surface="test")
    rendered = await app.runner.run("prompt_render", {"name": "a", "variables": {"x": 1}}, READER, surface="test")
    assert rendered.text == "A 1"  # type: ignore[attr-defined]
    with pytest.raises(Forbidden, match=r"^the tool prompt_save needs the 'train' scope"):
        await app.runner.run("prompt_save", {"name": "a", "template": "B", "message": "2"}, READER, surface="test")
