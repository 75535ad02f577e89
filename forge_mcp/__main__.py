from forge_mcp.cli import main

raise SystemExit(main())
