"""The protocol adapters: MCP (HTTP and stdio), the A2A side, the HTTP app, its routes and guards."""
