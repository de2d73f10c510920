"""Counts words: a tiny package for the parity tests."""


def count(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for word in text.split():
        out[word] = out.get(word, 0) + 1
    return out
