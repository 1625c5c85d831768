"""1,000 mutated challenger outputs (truncated, nested and doubled tags, huge fields, binary, wrong codecs, lone
surrogates, hostile code) through the parser and the real sandbox check: nothing crashes, every rejection has a
reason code. bench/fuzz.py runs 10,000."""

from __future__ import annotations

import pytest

from selfchallenge.tasks.fuzz import MUTATIONS, mutated_outputs, well_formed_texts

pytestmark = [pytest.mark.docker]


def test_mutations_are_deterministic_and_each_changes_the_text():
    texts = [text for _, _, text in well_formed_texts(per_env=2)]
    first, again = list(mutated_outputs(texts, 200, seed=3)), list(mutated_outputs(texts, 200, seed=3))
    assert first == again and {m for m, _, _ in first} != {"intact"}
    import random

    for name, mutate in MUTATIONS.items():  # every mutation does something to a well-formed task
        changed = sum(mutate(random.Random(i), texts[i % len(texts)]) != texts[i % len(texts)] for i in range(20))
        assert changed >= 10, name


@pytest.mark.timeout(900)
def test_a_thousand_mutated_outputs_neither_crash_the_parser_nor_the_filter():
    from selfchallenge.config import SandboxConfig
    from selfchallenge.sandbox.pool import SandboxPool
    from selfchallenge.tasks.fuzz import fuzz_parser_and_filter

    cfg = SandboxConfig(backend="docker", num_workers=2, max_sessions=0, program_timeout_s=2.0, host_grace_s=3.0)
    with SandboxPool(cfg) as pool:
        report = fuzz_parser_and_filter(lambda payloads: pool.check_many(payloads), n=1000, seed=0, max_checks=120)
    summary = report.to_dict()
    print(summary)
    assert report.crashes == [] and report.unknown_reasons == [], (report.crashes[:5], report.unknown_reasons[:5])
    assert summary["outputs"] == 1000 and summary["checked"] == min(120, summary["parsed"])
    # the mutations reach both sides of both stages: many refusals with several codes, some tasks kept
    assert len(report.parse_reasons) >= 5 and 100 <= summary["parsed"] <= 900, report.parse_reasons
    assert report.check_reasons["kept"] >= 5 and len(report.check_reasons) >= 3, report.check_reasons
