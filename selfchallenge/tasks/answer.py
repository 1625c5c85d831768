"""What a verifier receives as `answer`: one function for both the filter and the executor. Stdlib only.

An executor answers in text (what follows `Answer:`), while a solution or failure case sets `answer` to any
Python value. `answer_text` turns the latter into the text an executor would have written (`str(value)`), so a
verifier judges both the same way: `answer == 1134.0` is False for the solution's 1134.0 too, and the filter
rejects it (solution_rejected) instead of keeping a task no executor could ever pass. The sandbox worker applies
it right before every verifier call (selfchallenge/sandbox/worker.py).
"""

from __future__ import annotations

from typing import Any


def answer_text(value: Any) -> str | None:
    """None stays None, text stays text, any other value becomes str(value) (1134.0 -> "1134.0", [1, 2] ->
    "[1, 2]", ("A", 3) -> "('A', 3)")."""
    if value is None or isinstance(value, str):
        return value
    try:
        return str(value)
    except Exception:  # noqa: BLE001 - a value whose str() fails (too large an int, say) is shown by its type
        return f"<{type(value).__name__}>"
