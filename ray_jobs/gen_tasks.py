"""Task generation alone (challenger proposals + sandbox filter) as a Ray job:

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python ray_jobs/gen_tasks.py --config ray_jobs/configs/default.yaml run_dir=/shared/runs/tasks1

Kept tasks land in <run_dir>/iter_000/tasks_kept (dataset) and tasks_kept.jsonl.
"""

from _common import parse

if __name__ == "__main__":
    from selfchallenge.pipeline import run_pipeline

    run_pipeline(parse(__doc__), stages=("propose", "check"))
