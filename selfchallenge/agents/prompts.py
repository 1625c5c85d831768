"""Prompts for the three roles: challenger (explores, then writes a Code-as-Task), executor (solves it) and the
simulated user (retail/airline). Every prompt is built from the environment itself (its description and tool
schemas), so a new environment needs no prompt code.
"""

from __future__ import annotations

from ..tasks.parser import format_task
from ..tasks.record import CaTTask

ANSWER_DOC = "the executor's final answer as a string (what follows `Answer:`), or str() of the value a program set"
DIALOGUE_ANSWER_DOC = (
    "everything the agent said to the user, joined by newlines (a program sets it to what it would say)"
)


def example_task(env, inputs: bool = False) -> CaTTask:
    """The environment's Code-as-Task example for the challenger prompt (its `<inputs>` one with `inputs`)."""
    fields = dict(env.inputs_example_task if inputs and env.inputs_example_task else env.example_task)
    given = fields.pop("inputs", None)
    env_config = {"inputs": given} if given else {}
    return CaTTask(id="example", env=env.name, env_config=env_config, provenance={}, **fields)


def render_tools(tool_specs: list[dict]) -> str:
    """One line per tool: `name(arg: type, ...)`: description."""
    lines = []
    for spec in tool_specs:
        fn = spec.get("function", spec)
        params = fn.get("parameters", {}) or {}
        props = params.get("properties", {}) or {}
        args = ", ".join(f"{name}: {p.get('type', 'any')}" for name, p in props.items())
        description = " ".join(str(fn.get("description", "")).split())
        lines.append(f"- {fn['name']}({args}): {description}")
    return "\n".join(lines)


def challenger_system_prompt(env_name: str, env, explore_turns: int, inputs: bool = False) -> str:
    """The challenger's system prompt for `env` (an Environment): its description, the executor's tools, the
    challenger-only discovery tools (`env.discovery_specs()`), the task format and an example. `inputs`
    (challenger.inputs) documents the optional `<inputs>` tag where the environment takes named inputs."""
    use_inputs = inputs and bool(env.inputs_doc)
    example = format_task(example_task(env, use_inputs)) if env.example_task else "(none for this environment)"
    who = (
        "a simulated user (the instruction is that user's persona and goal; the agent never sees it)"
        if env.dialogue
        else "an agent (the instruction is shown to it as its task)"
    )
    discovery = env.discovery_specs()
    discovery_text = (
        "\nDiscovery tools (yours only, for exploring; the agent and the solution cannot use them):\n"
        + render_tools(discovery)
        + "\n"
        if discovery
        else ""
    )
    return f"""You are the challenger: you invent a new, solvable task for {who}, in this environment.

{env.describe()}

Tools (Python functions; the solution and the agent use these):
{render_tools(env.tool_specs())}
{discovery_text}
First explore for up to {explore_turns} turns. In each turn write one action:
Action:
```python
print(<tool calls that show you what exists>)
```
End Action
Then write exactly one task in this format, and nothing after it:
<task>
<instruction>the task, with every fact needed to solve it</instruction>
<evaluation_function>
def evaluate(state, answer):
    return <True if and only if the task was done>
</evaluation_function>
<solution>
a Python program that solves the task with the tools and sets `answer`
</solution>
<failure_case>
a plausible but wrong program (give three or more, each in its own tag)
</failure_case>
</task>
`state` is {env.state_doc}. `answer` is {DIALOGUE_ANSWER_DOC if env.dialogue else ANSWER_DOC}.{env.inputs_doc if use_inputs else ""}
A task is kept only if the solution passes evaluate and every failure case fails it.

Example (the names and ids in it are illustrative; use what you find while exploring):
{example}"""


CHALLENGER_START = "Explore the environment, then write one new task."
CHALLENGER_WRITE_NOW = "Exploration is over. Now write the task in the <task> format."
CHALLENGER_NOT_AN_ACTION = "Write one Action to explore, or write the task."


def executor_system_prompt(dialogue: bool, describe: str, tool_specs: list[dict], action_format: str) -> str:
    if action_format == "json":
        how = (
            'Action:\n{"name": "<tool>", "arguments": {<argument>: <value>}}\nEnd Action\n'
            "calls one tool; its output comes back to you."
        )
    else:
        how = (
            "Action:\n```python\n<Python that calls the tools and prints what you need>\n```\nEnd Action\n"
            "runs the code (variables persist between actions); what it prints comes back to you."
        )
    finish = (
        "Otherwise write a plain message to the user. The conversation ends when the user is satisfied."
        if dialogue
        else "When you know the result, write `Answer: <the answer only>`."
    )
    return f"""{describe}

Tools:
{render_tools(tool_specs)}

Each turn, output exactly one of these. An action:
{how}
{finish}"""


def user_system_prompt(instruction: str) -> str:
    """tau-bench's simulated-user rules, in our words."""
    return f"""You are a user talking to a customer service agent. Your situation and goal:
{instruction}

Rules:
- Write one short line at a time, as the user would; do not reveal everything at once.
- Never make up information you were not given: if asked for something you do not know, say you do not remember.
- Do not copy the text above word for word; stay in character.
- When your goal is done (or cannot be done), write ###STOP### on its own."""


USER_OPENING_FROM_AGENT = "Hi! How can I help you today?"
USER_STOP = "###STOP###"


def executor_opening(env_name: str, env, instruction: str, action_format: str = "code") -> list[dict]:
    """The messages an executor episode starts from, the same in training and evaluation.

    calculation / web_browsing: M3ToolEval's own prompt (tool list, action rules, the instruction) as one user
    message, so self-generated tasks train exactly the format the benchmark evaluates. retail / airline: the policy
    and tools as the system prompt; the simulated user speaks first (its instruction stays hidden)."""
    if env.dialogue:
        return [
            {
                "role": "system",
                "content": executor_system_prompt(True, env.describe(), env.tool_specs(), action_format),
            }
        ]
    from ..envs.base import describe_given_values
    from ..eval.m3tooleval import build_m3_prompt

    mode = "json_as_action" if action_format == "json" else "code_as_action"
    given = env.program_globals()  # a generated task's inputs; benchmark tasks have none
    if given:
        instruction = f"{instruction}\n{describe_given_values(given)}"
    return [{"role": "user", "content": build_m3_prompt(env.tool_docs(), instruction, mode)}]
