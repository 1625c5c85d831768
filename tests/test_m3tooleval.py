"""M3ToolEval helpers: the answer checker (every example and quirk of the spec), task loading, env mapping, the
prompt text and the per-turn protocol rules."""

from __future__ import annotations

import json

import pytest

from selfchallenge.envs import make_env
from selfchallenge.eval.m3tooleval import (
    BOTH_ACTION_AND_ANSWER,
    INCORRECT_ANSWER,
    NEITHER_ACTION_NOR_ANSWER,
    NO_OUTPUT,
    SEVERAL_ACTIONS,
    SEVERAL_ANSWERS,
    build_m3_prompt,
    check_answer,
    format_code_observation,
    load_m3_tasks,
    m3_env_for_task,
    m3_task_prompt,
    parse_generation,
    retry_message,
    truncate_generation,
)


@pytest.fixture(scope="module")
def m3_dir(shared_data):
    return str(shared_data / "m3tooleval")


@pytest.fixture(scope="module")
def tasks(m3_dir):
    return load_m3_tasks(m3_dir)


# --- check_answer ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "expected", "verdict"),
    [
        # strings: exact, or through literal_eval
        ("UUU", "UUU", True),
        ("'UUU'", "UUU", True),
        ('"UUU"', "UUU", True),
        ("uuu", "UUU", False),
        ("UUU.", "UUU", False),
        ("allison.hill@taylor.net", "allison.hill@taylor.net", True),  # literal_eval fails -> plain comparison
        ("'Invalid DNA sequence'", "Invalid DNA sequence", True),
        # booleans: "False" through literal_eval; int(False) == 0 lets "0" pass too
        ("False", False, True),
        ("0", False, True),
        ("True", False, False),
        ("false", False, False),
        # floats: int() truncation on both sides
        ("8100", 8100.0, True),
        ("8100.0", 8100.0, True),
        ("8,100", 8100.0, False),
        ("161", 161.25, True),  # int(161.25) == 161
        ("161.25", 161.25, True),
        ("161.250", 161.25, True),  # literal_eval -> 161.25
        ("161.3", 161.25, False),
        ("380.42", 380.41999999999996, False),
        ("380.41999999999996", 380.41999999999996, True),
        ("380", 380.41999999999996, True),
        ("228.16", 228.15900000000002, False),
        # ints
        ("3", 3, True),
        ("3.0", 3, True),
        (" 3 ", 3, True),
        ("3.7", 3, False),
        ("three", 3, False),
        # tuples, lists, dicts: only the exact str() text
        ("('A', 3)", ("A", 3), True),
        ("('A',3)", ("A", 3), False),
        ("['A', 3]", ("A", 3), False),
        ("A", ("A", 3), False),
        ("[36380.0, 48150.0, 68480.0]", [36380.0, 48150.0, 68480.0], True),
        ("[36380, 48150, 68480]", [36380.0, 48150.0, 68480.0], False),
        ("[36380.0,48150.0,68480.0]", [36380.0, 48150.0, 68480.0], False),
        ("{'T': 1, 'A': 2, 'C': 2, 'G': 1}", {"T": 1, "A": 2, "C": 2, "G": 1}, True),
        ("{'A': 2, 'T': 1, 'C': 2, 'G': 1}", {"T": 1, "A": 2, "C": 2, "G": 1}, False),
        ('{"T": 1, "A": 2, "C": 2, "G": 1}', {"T": 1, "A": 2, "C": 2, "G": 1}, False),
    ],
)
def test_check_answer(answer, expected, verdict):
    assert check_answer(answer, expected) is verdict


def test_check_answer_on_every_task_expected_value(tasks):
    for task in tasks:
        expected = task["expected_output"]
        assert check_answer(str(expected), expected), task["name"]
        assert not check_answer("no idea", expected), task["name"]


# --- tasks and envs ------------------------------------------------------------------------------------------------
def test_load_m3_tasks(tasks, m3_dir):
    assert len(tasks) == 82
    counts = {}
    for task in tasks:
        counts[task["domain"]] = counts.get(task["domain"], 0) + 1
    assert counts == {
        "web_browsing": 34,
        "trade_calculator": 17,
        "travel_itinerary_planning": 15,
        "message_decoder": 8,
        "cryptobotanists_plant_dna_sequencer": 8,
    }
    by_name = {task["name"]: task for task in tasks}
    combined = by_name["cryptobotanists_plant_dna_sequencer/find_most_common_nucleotide_combined_sequence"]
    assert combined["expected_output"] == ("A", 3)
    assert isinstance(by_name["trade_calculator/interstellar_trade_transaction"]["expected_output"], float)
    assert by_name["web_browsing/total_price_of_selected_items_2"]["expected_output"] == 380.41999999999996
    assert (
        by_name["cryptobotanists_plant_dna_sequencer/transcribe_translate_find_amino_acid"]["expected_output"] is False
    )
    assert all(task["data_dir"] == m3_dir for task in tasks)
    assert load_m3_tasks(m3_dir + "/tasks.json")[0]["name"] == tasks[0]["name"]


def test_load_m3_tasks_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="M3ToolEval tasks not found"):
        load_m3_tasks(str(tmp_path))
    bad = tmp_path / "tasks.json"
    row = {"name": "x/y", "domain": "message_decoder", "instruction": "i", "tools": []}
    bad.write_text(json.dumps([{**row, "expected_output": "3", "expected_output_type": "int"}]))
    with pytest.raises(ValueError, match=r"expected_output '3' is not of expected_output_type 'int'"):
        load_m3_tasks(str(bad))
    bad.write_text(json.dumps([{**row, "domain": "chess", "expected_output": 1}]))
    with pytest.raises(ValueError, match="unknown domain 'chess'"):
        load_m3_tasks(str(bad))
    bad.write_text(json.dumps([{"name": "x"}]))
    with pytest.raises(ValueError, match="missing field"):
        load_m3_tasks(str(bad))


def test_m3_env_for_task(tasks, m3_dir):
    web = next(task for task in tasks if task["domain"] == "web_browsing")
    travel = next(task for task in tasks if task["domain"] == "travel_itinerary_planning")
    assert m3_env_for_task(web) == ("web_browsing", {"data_dir": m3_dir})
    assert m3_env_for_task(travel) == ("calculation", {"domain": "travel_itinerary_planning", "data_dir": m3_dir})
    assert m3_env_for_task(travel, "/elsewhere")[1]["data_dir"] == "/elsewhere"
    for task in tasks:
        env = make_env(*m3_env_for_task(task))
        assert [tool["name"] for tool in task["tools"]] == list(env.tools()), task["name"]


# --- prompt ----------------------------------------------------------------------------------------------------------
TOOLS = [
    {"name": "add", "description": "Adds two numbers.", "signature": "add(a: int, b: int) -> int"},
    {"name": "view", "description": "Shows the page.\nNo arguments.", "signature": "view() -> str"},
]
EXPECTED_CODE_PROMPT = """You have access to the following tools:
[1] add: Adds two numbers.
    Signature: add(a: int, b: int) -> int
[2] view: Shows the page.
No arguments.
    Signature: view() -> str

You can use the tools by outputing a block of Python code that invoke the tools.
You may use for-loops, if-statements, and other Python constructs when necessary.
Be sure to print the final answer at the end of your code.
You should begin your tool invocation with 'Action:' and end it with 'End Action'.
Example: 'Action:
tool_name(argument_1)
End Action'

Now, let's get started!

Instruction: What is 2 + 3?
You can optionally express your thoughts using natural language before your action. \
For example, 'Thought: I want to use tool_name to do something. Action: <your action to call tool_name> End Action'.
Note that your output should always contain either 'Action:' or 'Answer:', but not both.
When you are done, output the result using 'Answer: your answer'
Please ONLY output the answer (e.g., single number), without any other text."""


def test_code_as_action_prompt_is_exact():
    assert build_m3_prompt(TOOLS, "What is 2 + 3?") == EXPECTED_CODE_PROMPT


def test_other_action_modes():
    text = build_m3_prompt(TOOLS, "q", "text_as_action")
    assert "followed by its arguments, delimited by commas.\n" in text
    assert "Example: 'Action: tool_name, argument_1 End Action'\nYou can only invoke one tool at a time.\n" in text
    json_mode = build_m3_prompt(TOOLS, "q", "json_as_action")
    assert "  - 'tool': the name of the tool\n  - 'args': a list of arguments to the tool\n" in json_mode
    assert 'Example: \'Action: {"tool": "tool_name", "args": ["argument_1"]} End Action\'\n' in json_mode
    with pytest.raises(ValueError, match="unknown M3ToolEval action mode 'yaml'"):
        build_m3_prompt(TOOLS, "q", "yaml")


def test_task_prompts_match_env_tool_docs(tasks):
    for task in tasks:
        env = make_env(*m3_env_for_task(task))
        prompt = m3_task_prompt(task)
        assert prompt == build_m3_prompt(env.tool_docs(), task["instruction"])
        assert f"Instruction: {task['instruction']}\nYou can optionally" in prompt


# --- per-turn rules --------------------------------------------------------------------------------------------------
def test_truncate_generation():
    assert truncate_generation("  Answer: 5") == "Answer: 5"
    two_actions = "Thought: go\nAction:\nprint(1)\nEnd Action\nObservation: 1\nAction:\nprint(2)\nEnd Action"
    assert truncate_generation(two_actions) == "Thought: go\nAction:\nprint(1)\nEnd Action"
    assert truncate_generation("Action: x()\nThought: more\nAnswer: 3") == "Action: x()"
    assert truncate_generation("Answer: 3\nAnswer: 4") == "Answer: 3"


def test_parse_generation():
    assert parse_generation("Thought: done. Answer:  42 ") == {"type": "answer", "content": "42", "extra_info": None}
    assert parse_generation("Answer: 1 Answer: 2") == {"type": "answer", "content": "1", "extra_info": SEVERAL_ANSWERS}
    action = parse_generation("Let me look.\nAction:\n  print(view())\nEnd Action\n")
    assert action == {"type": "action", "content": "print(view())\n", "extra_info": None}
    assert parse_generation("Action: a() Action: b()")["extra_info"] == SEVERAL_ACTIONS
    assert parse_generation("Action: x End Action Answer: 1")["content"] == BOTH_ACTION_AND_ANSWER
    assert parse_generation("I think it is 3")["content"] == NEITHER_ACTION_NOR_ANSWER


def test_format_code_observation_and_retry():
    assert format_code_observation("") == NO_OUTPUT
    assert format_code_observation("42\n") == "42"
    assert format_code_observation("'abc'\n") == "abc"
    assert format_code_observation("Out[3]: [1, 2]\n") == "[1, 2]"
    assert format_code_observation("hello world\n") == "hello world\n"
    long = format_code_observation("x" * 2500)
    assert long == "x" * 2000 + "...\n[Output Truncated]"
    assert retry_message() == INCORRECT_ANSWER
    assert INCORRECT_ANSWER.startswith("Your answer is incorrect. Please try again.")
    assert retry_message(SEVERAL_ANSWERS) == INCORRECT_ANSWER + "\n*Extra reminder: " + SEVERAL_ANSWERS
