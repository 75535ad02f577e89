"""Everything that touches hardware libraries, torch, mlx, a serving engine or another machine.
Modules here import their heavy dependencies inside functions, never at import time."""
