"""Every bound on a trace. The tool descriptions quote them, so they are said in one place."""

MAX_MESSAGES = 500
MAX_MESSAGES_BYTES = 1_048_576  # the messages as compact UTF-8 JSON, all together
MAX_NAME_CHARS = 128  # a tool's name, a tool call's id, a message's `name`
MAX_REF_CHARS = 200  # model, thread
MAX_LATENCY_MS = 7 * 24 * 3600 * 1000
MAX_TAGS = 64  # tags on a trace, and labels in its feedback
SLUG = r"^[a-z0-9][a-z0-9._-]{0,63}$"  # a tag or a label: 1-64 lowercase letters, digits, '.', '_', '-'
SOURCE = r"^[a-z][a-z0-9_-]{0,31}$"  # who recorded a trace: chat, a2a, external…
MAX_METADATA_KEYS = 32
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 1_024
MAX_CORRECTION_CHARS = 65_536
PREVIEW_CHARS = 120  # of the first user message, in trace_list
MAX_LIST = 200  # traces in one trace_list page
JUDGE_REASON_CHARS = 200  # a judge's reason, as trace_judge keeps it
