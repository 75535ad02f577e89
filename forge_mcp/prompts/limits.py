"""Every bound on a prompt. The tool descriptions and error messages quote them, so they are said
in one place."""

NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"  # a prompt's name: a lowercase slug, as MCP lists it
MAX_TEMPLATE_CHARS = 100_000
MAX_MESSAGE_CHARS = 500  # what a version changed, as a commit message; the MCP prompt's description
MAX_VARIABLES = 64  # variables one template may use
MAX_VARIABLES_CHARS = 200_000  # the values given to a render, as compact JSON, all together
MAX_OUTPUT_CHARS = 200_000  # the rendered text
MAX_VALUE_CHARS = 200_000  # any one string or list a template builds while it renders
MAX_WORK = 10_000_000  # what one operation inside a render may touch (characters or items)
MAX_INT_BITS = 4_096  # the largest number a template may compute
RENDER_SECONDS = 2.0  # a render's wall-clock budget, in its own thread
MAX_DIFF_CHARS = 100_000
MAX_LIST = 500  # prompts in one prompt_list answer
