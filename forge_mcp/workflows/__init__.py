"""DAG workflows: a declarative document of tool calls (document.py) with references between
steps (references.py) and conditions (conditions.py), checked against the tools' schemas for
a caller (validation.py, graph.py), run as an orchestration (jobs.py, state.py: DESIGN §4b),
shown and listed by service.py, drawn by charts.py."""

WORKFLOW_KIND = "workflow"  # the orchestration kind; here so the registry can name it without importing its code
