"""Distillation's one precondition: the teacher and the student share a tokenizer.

In `mode=distill` the teacher's engines write the tasks and the trajectories, and the student learns by SFT on
those trajectories' token ids (never re-tokenised text). The ids only mean the same words to the student if both
models map tokens to ids identically, so a run refuses a teacher whose vocabulary or special tokens differ.
"""

from __future__ import annotations

from selfchallenge.config import ConfigError


def tokenizer_fingerprint(path: str) -> tuple[dict[str, int], dict[str, int | None]]:
    """(token -> id over the whole vocabulary, special token role -> id) of the tokenizer at `path`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    specials = {role: getattr(tokenizer, f"{role}_token_id", None) for role in ("bos", "eos", "pad", "unk")}
    return tokenizer.get_vocab(), specials


def require_same_tokenizer(teacher_path: str, student_path: str) -> None:
    """Raise ConfigError naming both paths and the first difference when the tokenizers differ."""
    teacher_vocab, teacher_specials = tokenizer_fingerprint(teacher_path)
    student_vocab, student_specials = tokenizer_fingerprint(student_path)
    if teacher_vocab == student_vocab and teacher_specials == student_specials:
        return
    if len(teacher_vocab) != len(student_vocab):
        difference = f"vocabulary sizes {len(teacher_vocab)} vs {len(student_vocab)}"
    elif teacher_vocab != student_vocab:
        token = next(t for t in sorted(teacher_vocab) if student_vocab.get(t) != teacher_vocab[t])
        difference = f"token {token!r} is id {teacher_vocab[token]} vs {student_vocab.get(token)}"
    else:
        role = next(r for r in teacher_specials if teacher_specials[r] != student_specials[r])
        difference = f"{role} token id {teacher_specials[role]} vs {student_specials[role]}"
    raise ConfigError(
        f"mode=distill: the teacher's tokenizer (model.teacher_path={teacher_path!r}) differs from the student's "
        f"(model.path={student_path!r}): {difference}. The student trains on the teacher's token ids, so both must "
        "use the same tokenizer; pick a teacher of the student's model family"
    )
