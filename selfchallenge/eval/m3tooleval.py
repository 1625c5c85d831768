"""M3ToolEval: tasks, prompts, the interaction protocol's text rules and the answer checker. Stdlib only.

Everything here reproduces the benchmark's behaviour (docs/benchmarks-spec.md section 2), quirks included, so
that scores are comparable with published numbers:
- `check_answer(answer, expected)`: the benchmark's lenient-but-quirky comparison;
- `load_m3_tasks(path)`: the 82 tasks of tasks.json with typed expected outputs;
- `m3_env_for_task(task)`: the (env name, env_config) that hosts a task's tools;
- `build_m3_prompt(...)`: the single user message that starts an episode;
- `truncate_generation`, `parse_generation`, `format_code_observation`, `retry_message`: the per-turn rules.
An episode: at most `MAX_TURNS` model turns (temperature 0, at most `MAX_NEW_TOKENS` tokens each); a wrong answer
gets `retry_message()` and the episode goes on; success = any correct answer within the turn limit.
"""

from __future__ import annotations

import ast
import json
import os
import re
from typing import Any

MAX_TURNS = 10
MAX_NEW_TOKENS = 512
MAX_OBSERVATION_CHARS = 2000
ACTION_MODES = ("text_as_action", "json_as_action", "code_as_action")
CALCULATION_DOMAINS = (
    "cryptobotanists_plant_dna_sequencer",
    "message_decoder",
    "trade_calculator",
    "travel_itinerary_planning",
)
WEB_DOMAIN = "web_browsing"
M3_DOMAINS = (*CALCULATION_DOMAINS, WEB_DOMAIN)

INCORRECT_ANSWER = (
    "Your answer is incorrect. Please try again. Note that you should ONLY output the answer (e.g., single number), "
    "without any other text."
)
NO_OUTPUT = "[Executed Successfully with No Output, Did you forget to print?]"
TRUNCATED_SUFFIX = "...\n[Output Truncated]"
BOTH_ACTION_AND_ANSWER = "Invalid generation. Your output should contain either 'Action:' or 'Answer:', but not both."
NEITHER_ACTION_NOR_ANSWER = "Invalid generation. Your output should contain either 'Action:' or 'Answer:'"
SEVERAL_ANSWERS = "You have output more than one answer. Only the first answer will be used."
SEVERAL_ACTIONS = "You have output more than one action. Only the first action will be used."

_EXPECTED_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict, "tuple": tuple}


# --- answer checking -----------------------------------------------------------------------------------------
def _int_float_or_same(value: Any) -> Any:
    """int(x), else float(x), else x. Only ValueError falls through: a TypeError (list, dict, tuple) propagates."""
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value


def check_answer(answer: str, expected: Any) -> bool:
    """The benchmark's check of a model's answer string against a task's expected output.

    1. `answer == expected`, or `conv(answer) == conv(expected)` with conv = int, else float, else unchanged.
       int() truncates floats, so "161" passes for 161.25 (and "380" for 380.41999999999996), while "0" passes
       for False. For list/dict/tuple expected values int() raises TypeError, which skips step 2 (and 3's
       literal_eval): only the exact text `str(expected)` passes then.
    2. Otherwise `str(ast.literal_eval(answer)) == str(expected)` ("'UUU'" -> "UUU", "161.250" -> "161.25"),
    3. or, when literal_eval fails, `answer == str(expected)`.
    (Upstream also attempts a second comparison after literal_eval, but it is written so that it always raises;
    its effect is step 2's string comparison.)
    """
    try:
        if answer == expected or _int_float_or_same(answer) == _int_float_or_same(expected):
            return True
        answer = ast.literal_eval(answer)
    except Exception:
        pass
    return str(answer) == str(expected)


# --- tasks -----------------------------------------------------------------------------------------------------
def load_m3_tasks(path: str) -> list[dict]:
    """Tasks from an M3ToolEval tasks.json (or a folder holding one), with `expected_output` of the type named by
    `expected_output_type` (JSON has no tuples: ["A", 3] becomes ("A", 3)) and `data_dir` = the file's folder."""
    file_path = os.path.join(path, "tasks.json") if os.path.isdir(path) else path
    if not os.path.isfile(file_path):
        raise FileNotFoundError(
            f"M3ToolEval tasks not found at {path!r}; give tasks.json or its folder (e.g. shared/data/m3tooleval)"
        )
    with open(file_path, encoding="utf-8") as handle:
        raw = json.load(handle)
    if not isinstance(raw, list):
        raise ValueError(f"{file_path}: expected a JSON list of tasks, got {type(raw).__name__}")
    data_dir = os.path.dirname(os.path.abspath(file_path))
    tasks = []
    for index, row in enumerate(raw):
        where = f"{file_path} task #{index}"
        missing = [k for k in ("name", "domain", "instruction", "expected_output", "tools") if k not in row]
        if missing:
            raise ValueError(f"{where}: missing field(s) {missing}")
        if row["domain"] not in M3_DOMAINS:
            raise ValueError(f"{where} ({row['name']}): unknown domain {row['domain']!r}")
        task = dict(row)
        task["expected_output"] = _typed_expected(row, where)
        task.setdefault("is_single_tool_task", False)
        task["data_dir"] = data_dir
        tasks.append(task)
    return tasks


def _typed_expected(row: dict, where: str) -> Any:
    value = row["expected_output"]
    type_name = row.get("expected_output_type")
    if type_name is None:
        return value
    if type_name not in _EXPECTED_TYPES:
        raise ValueError(f"{where}: unknown expected_output_type {type_name!r}; known: {sorted(_EXPECTED_TYPES)}")
    wanted = _EXPECTED_TYPES[type_name]
    if wanted is tuple and isinstance(value, list):
        return tuple(value)
    if wanted is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, wanted) or (wanted is int and isinstance(value, bool)):
        raise ValueError(f"{where}: expected_output {value!r} is not of expected_output_type {type_name!r}")
    return value


def m3_env_for_task(task: dict, data_dir: str | None = None) -> tuple[str, dict]:
    """(env name, env_config) hosting a task's tools: ("web_browsing", {data_dir}) or ("calculation", {domain,
    data_dir}). `data_dir` defaults to the folder the task was loaded from."""
    folder = data_dir or task.get("data_dir")
    config = {"data_dir": folder} if folder else {}
    if task["domain"] == WEB_DOMAIN:
        return WEB_DOMAIN, config
    if task["domain"] in CALCULATION_DOMAINS:
        return "calculation", {"domain": task["domain"], **config}
    raise ValueError(f"task {task.get('name')!r} has unknown domain {task['domain']!r}")


# --- prompt ----------------------------------------------------------------------------------------------------
def build_m3_prompt(tools: list[dict], instruction: str, action_mode: str = "code_as_action") -> str:
    """The benchmark's first (and only) user message. `tools`: [{"name", "description", "signature"}] in order
    (a task's "tools", or `env.tool_docs()` for self-generated tasks)."""
    if action_mode not in ACTION_MODES:
        raise ValueError(f"unknown M3ToolEval action mode {action_mode!r}; choose one of {list(ACTION_MODES)}")
    text = "You have access to the following tools:\n"
    for number, tool in enumerate(tools, 1):
        text += f"[{number}] {tool['name']}: {tool['description']}\n"
        text += f"    Signature: {tool['signature']}\n"
    text += "\n"
    if action_mode == "text_as_action":
        text += (
            "You can use the tools by outputing the tool name followed by its arguments, delimited by commas.\n"
            "You should begin your tool invocation with 'Action:' and end it with 'End Action'.\n"
            "Example: 'Action: tool_name, argument_1 End Action'\n"
            "You can only invoke one tool at a time.\n"
        )
    elif action_mode == "json_as_action":
        text += (
            "You can use the tools by outputing a JSON object with the following fields:\n"
            "  - 'tool': the name of the tool\n"
            "  - 'args': a list of arguments to the tool\n"
            "You should begin your tool invocation with 'Action:' and end it with 'End Action'.\n"
            'Example: \'Action: {"tool": "tool_name", "args": ["argument_1"]} End Action\'\n'
            "You can only invoke one tool at a time.\n"
        )
    else:
        text += (
            "You can use the tools by outputing a block of Python code that invoke the tools.\n"
            "You may use for-loops, if-statements, and other Python constructs when necessary.\n"
            "Be sure to print the final answer at the end of your code.\n"
            "You should begin your tool invocation with 'Action:' and end it with 'End Action'.\n"
            "Example: 'Action:\ntool_name(argument_1)\nEnd Action'\n"
        )
    text += "\nNow, let's get started!\n\n"
    text += f"Instruction: {instruction}"
    text += (
        "\nYou can optionally express your thoughts using natural language before your action. For example, "
        "'Thought: I want to use tool_name to do something. Action: <your action to call tool_name> End Action'."
        "\nNote that your output should always contain either 'Action:' or 'Answer:', but not both."
        "\nWhen you are done, output the result using 'Answer: your answer'"
        "\nPlease ONLY output the answer (e.g., single number), without any other text."
    )
    return text


def m3_task_prompt(task: dict, action_mode: str = "code_as_action") -> str:
    return build_m3_prompt(task["tools"], task["instruction"], action_mode)


# --- per-turn rules --------------------------------------------------------------------------------------------
def truncate_generation(generation: str) -> str:
    """Cut a model turn before its second "Action:"/"Answer:", then after the first action's "End Action", then
    before a later "Thought:" (the benchmark's post-processing of every generation)."""
    generation = generation.lstrip()
    markers = list(re.finditer(r"(Answer:|Action:)", generation))
    if len(markers) <= 1:
        return generation
    trimmed = generation[: markers[1].start()].strip()
    # When there is no "Action:" find() gives -1, so the searches below start at index 6 (upstream arithmetic).
    after_action = trimmed.find("Action:") + len("Action:")
    end_action = trimmed.find("End Action", after_action)
    if end_action != -1:
        trimmed = trimmed[: end_action + len("End Action")].strip()
    next_thought = trimmed.find("Thought:", after_action)
    if next_thought != -1:
        trimmed = trimmed[:next_thought].strip()
    return trimmed


def parse_generation(generation: str) -> dict:
    """{"type": "answer"|"action"|"invalid", "content": str, "extra_info": str|None} for one (truncated) turn.
    An "invalid" content is the message to send back to the model."""
    has_answer, has_action = "Answer:" in generation, "Action:" in generation
    if has_answer and has_action:
        return {"type": "invalid", "content": BOTH_ACTION_AND_ANSWER, "extra_info": None}
    if has_answer:
        if generation.count("Answer:") > 1:
            return {"type": "answer", "content": generation.split("Answer:")[1].strip(), "extra_info": SEVERAL_ANSWERS}
        return {"type": "answer", "content": generation.split("Answer:", 1)[1].strip(), "extra_info": None}
    if has_action:
        extra = SEVERAL_ACTIONS if generation.count("Action:") > 1 else None
        action = generation.split("Action:")[1].lstrip() if extra else generation.split("Action:", 1)[1].lstrip()
        if "End Action" in action:
            action = action[: action.find("End Action")]
        return {"type": "action", "content": action, "extra_info": extra}
    return {"type": "invalid", "content": NEITHER_ACTION_NOR_ANSWER, "extra_info": None}


def format_code_observation(stdout: str) -> str:
    """What the model sees after a code action, given the program's captured stdout (including any IPython
    "Out[n]:" echo and traceback text): a placeholder if empty, cut at 2,000 characters, "Out[n]:" markers
    removed, and a Python literal normalised through literal_eval + str (so "'abc'" shows as abc)."""
    output = stdout or NO_OUTPUT
    if len(output) > MAX_OBSERVATION_CHARS:
        output = output[:MAX_OBSERVATION_CHARS] + TRUNCATED_SUFFIX
    output = re.sub(r"Out\[\d+\]:", "", output)
    try:
        return str(ast.literal_eval(output.strip()))
    except Exception:
        return output


def with_reminder(message: str, extra_info: str | None) -> str:
    return message + (f"\n*Extra reminder: {extra_info}" if extra_info else "")


def retry_message(extra_info: str | None = None) -> str:
    """The reply to a wrong answer (the episode continues)."""
    return with_reminder(INCORRECT_ANSWER, extra_info)
