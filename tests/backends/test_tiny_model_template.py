"""The tiny model's chat template (backends/tiny_model.py) renders an assistant's tool calls, so a
chat from a tool-using agent's trace trains on its calls (inside the generation markers, where
SFT learns) rather than on an empty turn; a chat without tools renders as it always did."""

from __future__ import annotations

from pathlib import Path

from forge_mcp.backends.tiny_model import CHAT_TEMPLATE, pretraining_chats

CALLS = [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
         {"id": "c2", "type": "function", "function": {"name": "clock", "arguments": "{}"}}]  # fmt: skip


def test_tool_calls_are_rendered_and_learned_from(tiny_model: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    assert tokenizer.chat_template == CHAT_TEMPLATE
    chat = [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": None, "tool_calls": CALLS},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"}, {"role": "assistant", "content": "Sunny."}]  # fmt: skip
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    assert '<|im_start|>assistant\ncall weather {"city": "Paris"}\ncall clock {}<|im_end|>' in text
    assert "None" not in text and "<|im_start|>tool\nsunny<|im_end|>" in text
    with_text = [{"role": "assistant", "content": "Checking.", "tool_calls": CALLS[:1]}]
    assert 'assistant\nChecking.\ncall weather {"city": "Paris"}<|im_end|>' in tokenizer.apply_chat_template(with_text, tokenize=False)
    encoded = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    learned = tokenizer.decode([t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"], strict=True) if m])
    assert learned.startswith('call weather {"city": "Paris"}') and "Sunny." in learned and "sunny" not in learned


def test_a_chat_without_tools_renders_as_before() -> None:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    before = ("{% for message in messages %}{% if message['role'] == 'assistant' %}<|im_start|>assistant\n"
              "{{ message['content'] }}<|im_end|>\n{% else %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}"
              "<|im_end|>\n{% endif %}{% endfor %}")  # fmt: skip
    plain = CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "").split("{% if add_generation")[0]
    env = ImmutableSandboxedEnvironment()
    for chat in pretraining_chats(0, 50):
        assert env.from_string(plain).render(messages=chat) == env.from_string(before).render(messages=chat)
