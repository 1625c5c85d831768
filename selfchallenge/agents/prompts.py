"""Prompts for the three roles: challenger (explores, then writes a Code-as-Task), executor (solves it) and the
simulated user (retail/airline). Every prompt is built from the environment itself (its description and tool
schemas), so a new environment needs no prompt code.
"""

from __future__ import annotations

from ..tasks.parser import format_task
from ..tasks.record import CaTTask

TAU_ENVS = ("retail", "airline")

STATE_DOCS = {
    "calculation": (
        "a dict: `domain`, `tool_calls` (every call made: name, args, kwargs, result, error), `num_tool_calls`, "
        "and `tables` when the travel domain is present"
    ),
    "web_browsing": (
        "a dict: `site`, `current_page`, `scroll_position`, `history`, `visited` (pages opened), `tool_calls`, "
        "`num_tool_calls`"
    ),
    "retail": 'the database: {"orders": {order_id: order}, "products": {...}, "users": {user_id: user}}',
    "airline": 'the database: {"flights": {...}, "reservations": {reservation_id: reservation}, "users": {...}}',
}

ANSWER_DOCS = {
    "calculation": "the executor's final answer as a string (what follows `Answer:`), or str() of the value a program set",
    "web_browsing": "the executor's final answer as a string (what follows `Answer:`), or str() of the value a program set",
    "retail": "everything the agent said to the user, joined by newlines (a program sets it to what it would say)",
    "airline": "everything the agent said to the user, joined by newlines (a program sets it to what it would say)",
}

INPUTS_DOC = {
    "calculation": (
        '\nOptionally put the task\'s numbers in <inputs>{"price": 1200, "rate": 0.9}</inputs> (after the instruction): '
        'they become Python variables in every program, and the verifier sees them as state["inputs"].'
    ),
}

_EXAMPLES = {
    "calculation": CaTTask(
        id="example",
        env="calculation",
        env_config={},
        instruction=(
            "A shipment worth 1200 is converted at an exchange rate of 0.9, then a tariff of 5 percent is charged on "
            "the converted price. What is the final value including the tariff? Answer with the number only."
        ),
        verifier=(
            "def evaluate(state, answer):\n    try:\n        return abs(float(answer) - 1134.0) < 0.01\n"
            "    except (TypeError, ValueError):\n        return False"
        ),
        solution=(
            "converted = convert_currency(1200, 0.9)\n"
            "answer = estimate_final_value(converted, calculate_tariff(converted, 5))"
        ),
        failure_cases=[
            "answer = estimate_final_value(1200, calculate_tariff(1200, 5))",
            "answer = convert_currency(1200, 0.9)",
        ],
    ),
    "web_browsing": CaTTask(
        id="example",
        env="web_browsing",
        env_config={},
        instruction="What is the price of the Wand in the shop? Answer with the number only.",
        verifier=(
            "def evaluate(state, answer):\n    return '/products/wand' in state['visited'] and "
            "str(answer).strip().lstrip('$') == '120'"
        ),
        solution="click_url('/products')\nclick_url('/products/wand')\nanswer = '120'",
        failure_cases=["answer = '120'", "click_url('/products')\nclick_url('/products/wand')\nanswer = 'Wand'"],
    ),
    "retail": CaTTask(
        id="example",
        env="retail",
        env_config={},
        instruction=(
            "You are Ava Lee, email ava.lee@example.com. You want to cancel your pending order #W0000001 because "
            "you no longer need it. You do not remember any other details."
        ),
        verifier=(
            "def evaluate(state, answer):\n    order = state['orders']['#W0000001']\n"
            "    return order['status'] == 'cancelled' and order.get('cancel_reason') == 'no longer needed'"
        ),
        solution=(
            "cancel_pending_order(order_id='#W0000001', reason='no longer needed')\n"
            "answer = 'Your order #W0000001 is cancelled.'"
        ),
        failure_cases=[
            "cancel_pending_order(order_id='#W0000001', reason='ordered by mistake')",
            "answer = 'Your order #W0000001 is cancelled.'",
        ],
    ),
    "airline": CaTTask(
        id="example",
        env="airline",
        env_config={},
        instruction=(
            "You are user mia_chen_1234. You want to add one checked bag to reservation ABC123, paying with your "
            "credit card credit_card_1111111. You are a regular member."
        ),
        verifier=("def evaluate(state, answer):\n    return state['reservations']['ABC123']['total_baggages'] == 1"),
        solution=(
            "update_reservation_baggages(reservation_id='ABC123', total_baggages=1, nonfree_baggages=1,\n"
            "                            payment_id='credit_card_1111111')\nanswer = 'Added one bag.'"
        ),
        failure_cases=[
            "update_reservation_baggages(reservation_id='ABC123', total_baggages=2, nonfree_baggages=2,\n"
            "                            payment_id='credit_card_1111111')",
            "answer = 'Added one bag.'",
        ],
    ),
}


# With challenger.inputs (the demo's setting): the task's numbers are named inputs instead of written out.
_INPUTS_EXAMPLE = CaTTask(
    id="example",
    env="calculation",
    env_config={"inputs": {"price": 1200, "rate": 0.9, "tariff_rate": 5}},
    instruction=(
        "A shipment worth price is converted at the exchange rate, then a tariff of tariff_rate percent is "
        "charged on the converted price. What is the final value including the tariff?"
    ),
    verifier=(
        'def evaluate(state, answer):\n    i = state["inputs"]\n    try:\n'
        '        return abs(float(answer) - i["price"] * i["rate"] * (1 + i["tariff_rate"] / 100)) < 0.01\n'
        "    except (TypeError, ValueError):\n        return False"
    ),
    solution=(
        "converted = convert_currency(price, rate)\n"
        "answer = estimate_final_value(converted, calculate_tariff(converted, tariff_rate))"
    ),
    failure_cases=[
        "answer = estimate_final_value(price, calculate_tariff(price, tariff_rate))",
        "answer = convert_currency(price, rate)",
    ],
)


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
    (challenger.inputs) documents the optional `<inputs>` tag of the calculation environment."""
    use_inputs = inputs and env_name in INPUTS_DOC
    example = format_task(_INPUTS_EXAMPLE if use_inputs else _EXAMPLES[env_name])
    who = (
        "a simulated user (the instruction is that user's persona and goal; the agent never sees it)"
        if env_name in TAU_ENVS
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
`state` is {STATE_DOCS[env_name]}. `answer` is {ANSWER_DOCS[env_name]}.{INPUTS_DOC[env_name] if use_inputs else ""}
A task is kept only if the solution passes evaluate and every failure case fails it.

Example (the names and ids in it are illustrative; use what you find while exploring):
{example}"""


CHALLENGER_START = "Explore the environment, then write one new task."
CHALLENGER_WRITE_NOW = "Exploration is over. Now write the task in the <task> format."
CHALLENGER_NOT_AN_ACTION = "Write one Action to explore, or write the task."


def executor_system_prompt(env_name: str, describe: str, tool_specs: list[dict], action_format: str) -> str:
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
        if env_name in TAU_ENVS
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
    if env_name in TAU_ENVS:
        return [
            {
                "role": "system",
                "content": executor_system_prompt(env_name, env.describe(), env.tool_specs(), action_format),
            }
        ]
    from ..envs.base import describe_given_values
    from ..eval.m3tooleval import build_m3_prompt

    mode = "json_as_action" if action_format == "json" else "code_as_action"
    given = env.program_globals()  # a generated task's inputs; benchmark tasks have none
    if given:
        instruction = f"{instruction}\n{describe_given_values(given)}"
    return [{"role": "user", "content": build_m3_prompt(env.tool_docs(), instruction, mode)}]
