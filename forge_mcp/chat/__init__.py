"""`forge-mcp chat`: a terminal conversation with the chat operator (agents/operator.py), which
reaches forge-mcp as a real MCP client: a `forge-mcp stdio` it spawns, or a running server
at a URL with a key.

    mcp_toolbox.py  the operator's tools over an MCP client session; forge:<name>@vN over serve_list
    terminal.py     what the person sees: streamed text, tool lines, progress bars, prompts
    session.py      the conversation loop: commands, questions, Ctrl-C, traces
"""
