-- Versioned prompt templates: a row per version, numbered from 1 per name; the latest version of
-- each name is also an MCP prompt. Shared by everyone on the server; principal says who saved it.
CREATE TABLE prompts (
    name       TEXT NOT NULL,                  -- a lowercase slug
    version    INTEGER NOT NULL CHECK (version >= 1),
    template   TEXT NOT NULL,                  -- Jinja2 source, rendered in a sandbox
    message    TEXT NOT NULL,                  -- what this version changed; the MCP prompt's description
    variables  TEXT NOT NULL DEFAULT '[]',     -- JSON: {"names": in order of first use, "optional": those it can do without}
    created_at REAL NOT NULL,
    principal  TEXT NOT NULL,                  -- who saved it ("forge-mcp" for a packaged default)
    UNIQUE (name, version)
);
