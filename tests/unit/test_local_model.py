"""The embedded local model's answers (pure functions, no servers)."""

from __future__ import annotations

from shared.local_model import _pieces, answer_for


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_answer_echoes_the_question_on_one_line() -> None:
    assert answer_for(ask("Hello\n  there")) == "This is the local demo model. You said: Hello there"


def test_echo_command_answers_the_rest_verbatim_with_its_newlines() -> None:
    markdown = "# Title\n\n```python\nprint('hi')\n```\n<img src=x onerror=alert(1)>"
    assert answer_for(ask(f"/echo {markdown}")) == markdown
    assert answer_for(ask(f"/echo\n{markdown}")) == markdown


def test_echo_needs_a_space_or_newline_after_the_command() -> None:
    assert answer_for(ask("/echoing")) == "This is the local demo model. You said: /echoing"


def test_streamed_pieces_join_into_the_answer() -> None:
    text = answer_for(ask("/echo a  b\n\nc "))
    assert "".join(_pieces(text)) == text
