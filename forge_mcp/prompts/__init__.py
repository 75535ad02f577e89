"""Versioned prompt templates (DESIGN §9): saved by name as numbered versions with a message,
listed, diffed and rendered with variables; the latest version of each is also an MCP prompt,
and the chat operator's system prompt is one of them. limits.py bounds a prompt, models.py is
what goes in and out, sandbox.py is the Jinja2 sandbox that renders them (never eval),
templates.py parses and renders one, repository.py stores the versions, defaults.py names the
prompts every workspace has, service.py is what tools, MCP prompts and the operator call."""
