"""Orchestrations (DESIGN §4b): durable multi-step work that runs inside the server, starts
jobs as its steps and waits on them without holding an admission slot.

An orchestration is a job row like any other whose executor is the server itself
(executor.py: a coroutine in the server's loop, no worker process, no slot), so the job
tools, MCP progress, resource updates and A2A tasks work for it unchanged. Its kinds are
declared like job kinds (kinds.py) and listed in catalog.py; its code sees context.py; its
children are linked to it in job_links (links.py), written before each child is announced.
"""
