"""The whole self-challenging loop as a Ray job:

    ray job submit --address http://HEAD:8265 --working-dir . -- \
        python ray_jobs/train.py --config ray_jobs/configs/default.yaml run_dir=/shared/runs/exp1

Resubmitting with the same run_dir resumes from the last finished stage.
"""

from _common import parse

if __name__ == "__main__":
    from selfchallenge.pipeline import run_pipeline

    run_pipeline(parse(__doc__))
