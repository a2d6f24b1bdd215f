"""How close two appeals' texts are: Jaccard similarity of their character bigrams.

Chinese has no spaces between words, and a citizen retelling the same matter on
another channel reuses its key words (the place, the object, the wrong done) in
another order and with other filler; sets of adjacent character pairs catch that
without a word segmenter or a model. Punctuation, spaces and ASCII case are
dropped first. Measured on ``tests/data/appeal_pairs.tsv`` (see the test there).
"""

from __future__ import annotations

import unicodedata


def _cleaned(text: str) -> str:
    kept = []
    for char in unicodedata.normalize("NFKC", text).lower():
        kind = unicodedata.category(char)
        if kind[0] in "LN":  # letters (CJK included) and digits
            kept.append(char)
    return "".join(kept)


def bigrams(text: str) -> frozenset[str]:
    """The set of adjacent character pairs of ``text`` (a lone character is its own set)."""
    cleaned = _cleaned(text)
    if len(cleaned) < 2:
        return frozenset({cleaned}) if cleaned else frozenset()
    return frozenset(cleaned[i : i + 2] for i in range(len(cleaned) - 1))


def similarity(a: str, b: str) -> float:
    """|A ∩ B| / |A ∪ B| over the two texts' bigrams; 0.0 when either has none."""
    first, second = bigrams(a), bigrams(b)
    if not first or not second:
        return 0.0
    return len(first & second) / len(first | second)
