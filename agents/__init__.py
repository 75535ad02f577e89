"""Agents: the A2A executor that runs capabilities, and later the chat operator and
trace capture for the flywheel."""
