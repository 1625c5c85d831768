import pytest

from selfchallenge.agents.actions import (
    CodeAction,
    FinalAnswer,
    InvalidAction,
    Message,
    ToolCall,
    format_code_action,
    format_json_action,
    parse_action,
)
from selfchallenge.tasks.parser import PARSE_REASONS, format_task, nothing_kept_hint, parse_challenger_output

GOOD = """I explored; now the task.
<task>
<instruction>Convert 100 USD at rate 1.5 and answer with the number.</instruction>
<evaluation_function>
```python
def evaluate(state, answer):
    return answer == 150.0
```
</evaluation_function>
<solution>
answer = convert_currency(100, 1.5)
</solution>
<failure_case>
answer = convert_currency(100, 1.4)
</failure_case>
<failure_case>answer = None</failure_case>
</task>"""


def test_parse_good_task_strips_fences_and_round_trips():
    result = parse_challenger_output(GOOD, "calculation", {"domain": "trade_calculator"}, {"model": "m"})
    assert result.reason == "parsed"
    task = result.task
    assert task.verifier.startswith("def evaluate(state, answer):") and "```" not in task.verifier
    assert task.failure_cases == ["answer = convert_currency(100, 1.4)", "answer = None"]
    assert task.env_config == {"domain": "trade_calculator"} and task.provenance == {"model": "m"}
    again = parse_challenger_output(format_task(task), "calculation", task.env_config).task
    assert (again.instruction, again.verifier, again.solution, again.failure_cases, again.id) == (
        task.instruction,
        task.verifier,
        task.solution,
        task.failure_cases,
        task.id,
    )


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty_output"),
        (GOOD.replace("answer = None", "answer = '\ud800'"), "invalid_text"),
        (GOOD.replace("</solution>", ""), "unclosed_tag"),
        (GOOD.replace("<instruction>", "<x>").replace("</instruction>", "</x>"), "missing_instruction"),
        (GOOD.replace("evaluation_function", "eval"), "missing_verifier"),
        (GOOD.replace("<solution>", "<s>").replace("</solution>", "</s>"), "missing_solution"),
        (GOOD.replace("failure_case", "fc"), "missing_failure_cases"),
        (GOOD + "<solution>x</solution>", "duplicate_tag"),
        (GOOD.replace("answer = None", "  "), "empty_field"),
        (GOOD.replace("answer = None", "x" * 9000), "field_too_long"),
        (GOOD.replace("</task>", "<failure_case>a</failure_case>" * 8 + "</task>"), "too_many_failure_cases"),
    ],
)
def test_every_parse_failure_has_its_reason(text, reason):
    result = parse_challenger_output(text, "calculation", {})
    assert result.task is None and result.reason == reason and reason in PARSE_REASONS


def test_parse_actions():
    assert parse_action(format_code_action("print(1)")) == CodeAction("print(1)")
    assert parse_action("Action:\n```python\nx = 1\nprint(x)") == CodeAction("x = 1\nprint(x)")
    assert parse_action(format_json_action("f", {"a": 1}), "json") == ToolCall("f", {"a": 1})
    assert parse_action('Action: {"tool": "g", "args": [1, 2]}\nEnd Action', "json") == ToolCall("g", [1, 2])
    assert isinstance(parse_action("Action: {not json}\nEnd Action", "json"), InvalidAction)
    assert parse_action("Answer: 42") == FinalAnswer("42")
    # the turn is cut at the second marker, as M3ToolEval does
    assert parse_action("Answer: 42\nAction:\nprint(2)") == FinalAnswer("42")
    assert parse_action("Hello, how can I help?") == Message("Hello, how can I help?")
    assert parse_action("  ").reason == "empty_turn"
    assert parse_action("Action:\nEnd Action").reason == "empty_action"


def test_inputs_tag_sets_env_config_and_round_trips():
    text = GOOD.replace("<evaluation_function>", '<inputs>{"price": 100, "rate": 1.5}</inputs>\n<evaluation_function>')
    task = parse_challenger_output(text, "calculation", {"domain": "trade_calculator"}).task
    assert task.env_config == {"domain": "trade_calculator", "inputs": {"price": 100, "rate": 1.5}}
    again = parse_challenger_output(format_task(task), "calculation", {"domain": "trade_calculator"}).task
    assert again.env_config == task.env_config and again.id == task.id
    # the same question with other inputs is another task
    other = parse_challenger_output(text.replace("100", "200", 1), "calculation", {}).task
    assert other.id != task.id
    for bad in ("[1, 2]", '{"price": [1]}', '{"1x": 2}', "{not json"):
        result = parse_challenger_output(GOOD.replace("</task>", f"<inputs>{bad}</inputs></task>"), "calculation", {})
        assert result.reason == "bad_inputs", bad


def test_an_iteration_that_keeps_nothing_says_why_and_what_to_change():
    unparsed = nothing_kept_hint(3, 32, 0, {"unclosed_tag": 20, "missing_instruction": 7, "missing_verifier": 5})
    assert "none of 32 proposals" in unparsed and "unclosed_tag x20, missing_instruction x7" in unparsed
    assert "warmstart.epochs" in unparsed and "challenger.max_tokens" in unparsed
    # a challenger that writes the format but whose tasks fail the filter is pointed at the verdicts instead
    judged = nothing_kept_hint(3, 32, 25, {"solution_error": 25, "unclosed_tag": 7})
    assert "iter_003/checks.jsonl" in judged and "warmstart.epochs" not in judged
    assert "no reasons" in nothing_kept_hint(0, 0, 0, {})
