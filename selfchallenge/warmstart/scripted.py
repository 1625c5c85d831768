"""Seeded Code-as-Task generators for the environments whose tasks are about a world's records (web_browsing,
retail, airline), with the scripts both roles follow in the warm start.

A family (families_web.py, families_tau.py) looks at a world the way the challenger does at run time: through
the challenger's discovery tools, called on the host with the seed the scripted challenger episode will use, so
that what the exploration turn shows in the sandbox is exactly what the task is written about. It returns a
`Script`: the task (instruction, verifier, solution, failure cases, and a plausible verifier with a wrong
expectation), the exploration code (generic code, e.g. `order = json.loads(random_order("pending"))`, so no id
has to be remembered) and the executor's dialogue. `generate_scripted_tasks` turns scripts into
`GeneratedTask`s, good or flawed (the generic flaws of generators.FLAWS).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..envs import make_env
from ..rollout.challenger import discovery_seed
from ..tasks.record import CaTTask, instance_key, task_id
from .generators import FLAWS, GeneratedTask, draw_distinct

# executor script steps: ("code", python) an action, ("say", text) a message to the user, ("answer", text) a
# final `Answer:`, ("user", line) the simulated user's line (its opening first; "###STOP###" ends the dialogue)
STEP_KINDS = ("code", "say", "answer", "user")


@dataclass
class Script:
    family: str
    instruction: str
    verifier: str
    wrong_verifier: str  # plausible, but expects something else: the solution fails it (flaw wrong_constant)
    solution: str
    failures: list[str]
    dialogue: list[tuple[str, str]]
    explore: list[str]  # the challenger's exploration actions (code), what it ran to find these records


class World:
    """A host-side copy of an environment's world for a family to look at. `discover(name, *args)` calls a
    challenger discovery tool (seeded as the scripted episode's sandbox session will be) and `read(name, *args)`
    an executor tool; both return the parsed JSON result. The exploration code is the family's to write."""

    def __init__(self, env_name: str, env_config: dict, seed: int):
        self.env = make_env(env_name, env_config)
        self.data = getattr(self.env, "data", None)
        self._discovery = self.env.discovery_tools(seed)
        self._tools = self.env.tools()

    def discover(self, name: str, *args):
        return _parsed(self._discovery[name](*args))

    def read(self, name: str, *args):
        return _parsed(self._tools[name](*args))


def _parsed(text: str):
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


Family = Callable[[random.Random, World], "Script | None"]


def _flawed_parts(script: Script, flaw: str | None) -> tuple[str, list[str]]:
    """(verifier, failure cases) of the good task or of its flawed variant."""
    if flaw is None:
        return script.verifier, list(script.failures)
    if flaw == "lenient_verifier":
        return "def evaluate(state, answer):\n    return True", list(script.failures)
    if flaw == "wrong_constant":
        return script.wrong_verifier, list(script.failures)
    if flaw == "no_failure_cases":
        return script.verifier, []
    if flaw == "syntax_error":
        return script.verifier.replace("def evaluate(state, answer):", "def evaluate(state, answer)", 1), list(
            script.failures
        )
    raise ValueError(f"unknown flaw {flaw!r}; choose one of {sorted(FLAWS)}")


def check_dialogue(env_name: str, dialogue: list[tuple[str, str]]) -> None:
    """A dialogue the episode loop can replay: retail/airline open with the user and every message gets a user
    reply (the last one ###STOP###); web browsing has no user and ends with an answer."""
    kinds = [kind for kind, _ in dialogue]
    if any(kind not in STEP_KINDS for kind in kinds):
        raise ValueError(f"unknown step kind in {kinds}; use {STEP_KINDS}")
    if env_name in ("retail", "airline"):
        says = [i for i, kind in enumerate(kinds) if kind == "say"]
        if kinds[0] != "user" or not says or dialogue[-1] != ("user", "###STOP###"):
            raise ValueError(f"{env_name} dialogue must open with the user and end with its ###STOP###: {kinds}")
        if any(i + 1 >= len(kinds) or kinds[i + 1] != "user" for i in says):
            raise ValueError(f"every message to the user needs the user's reply next: {kinds}")
        if kinds.count("user") != len(says) + 1 or "answer" in kinds:
            raise ValueError(f"a {env_name} dialogue has one user line per message plus the opening: {kinds}")
    elif "user" in kinds or "say" in kinds or kinds[-1] != "answer":
        raise ValueError(f"{env_name} has no user: its script is actions then an answer, got {kinds}")


def generate_scripted_tasks(
    env_name: str,
    env_config: dict,
    families: list[Family],
    n: int,
    seed: int,
    flawed_rate: float = 0.0,
    max_failure_cases: int = 3,
    id_prefix: str = "warmstart",
) -> list[GeneratedTask]:
    """`n` distinct tasks for the world `env_config`, families drawn at random, a fraction `flawed_rate` flawed
    (kinds in turn). Each task's exploration was run on the host with the discovery seed of its episode id
    (`<id_prefix>-<env>-<k>`). Deterministic in all arguments."""
    if not families:
        raise ValueError(f"no warm-start task families for {env_name}")
    rng = random.Random(f"warmstart-{env_name}-{seed}")

    def propose(_count: int, attempt: int) -> tuple[str, tuple[Script, str]] | None:
        episode_id = f"{id_prefix}-{env_name}-{seed}-{attempt}"
        script = rng.choice(families)(rng, World(env_name, env_config, discovery_seed(episode_id)))
        if script is None:
            return None
        check_dialogue(env_name, script.dialogue)
        return instance_key(script.instruction, None), (script, episode_id)

    def build(candidate: tuple[Script, str], flaw: str | None) -> GeneratedTask:
        script, episode_id = candidate
        verifier, cases = _flawed_parts(script, flaw)
        cases = cases[: max(2, max_failure_cases)] if cases else cases
        task = CaTTask(
            id=task_id(env_name, instance_key(script.instruction, None), verifier),
            env=env_name,
            env_config=dict(env_config),
            instruction=script.instruction,
            verifier=verifier,
            solution=script.solution,
            failure_cases=cases,
            provenance={"generator": script.family, "flaw": flaw},
        )
        return GeneratedTask(
            task=task,
            family=script.family,
            flaw=flaw,
            expected_reason=FLAWS[flaw] if flaw else "kept",
            explore_actions=list(script.explore),
            executor_script=list(script.dialogue),
            episode_id=episode_id,
        )

    return draw_distinct(n, rng, flawed_rate, propose, build, f"this {env_name} world")
