"""Evaluation alone as a Ray job (benchmark and held-out tasks from the config's `eval` section):

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python ray_jobs/evaluate.py --config ray_jobs/configs/default.yaml model.path=/shared/models/m \
        eval.m3tooleval_tasks=/shared/data/m3tooleval/tasks.json
"""

from _common import parse

if __name__ == "__main__":
    from selfchallenge.pipeline import run_evaluation_only

    run_evaluation_only(parse(__doc__))
