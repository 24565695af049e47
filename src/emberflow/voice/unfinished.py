"""Does a transcript stop mid-sentence? ("What is the capital of", "I want to, um")

The audio model (Smart Turn) hears intonation; the words say more about a hesitation. A turn
whose last word needs a continuation (an article, a preposition, a conjunction, an auxiliary,
a possessive, a filler) or that ends on a comma or an ellipsis is not over, whatever the pitch;
auxiliaries and pronouns count only without a full stop or question mark after them.
English only, like the default recogniser; other languages rely on the audio model alone.
"""

from __future__ import annotations

import re

# Words that cannot end a sentence, punctuated or not.
_NEEDS_MORE = frozenset(
    """
a an the my your his her our their some every each
of to in into onto at by with from about between through during than
and or but nor because if although though unless whether
um uh er erm hmm very really quite
""".split()
)
# Words that rarely end a turn, unless the recogniser heard a full stop or a question there
# ("How many legs does a spider have?", "Who is it for?").
_NEEDS_MORE_UNPUNCTUATED = frozenset(
    """
is are was were am be been do does did have has had will would can could should shall may might must
for on as like over under after before so when while until
what which who where how why this that it i you he she we they
""".split()
)
_UNFINISHED_END = re.compile(r"(,|\.\.\.|…|-|—)\s*$")
_TERMINAL = re.compile(r"[.?!]\s*$")
_WORD = re.compile(r"[a-z']+")


def sounds_unfinished(text: str, language: str = "en") -> bool:
    stripped = text.strip()
    if not stripped:
        return False
    if _UNFINISHED_END.search(stripped):
        return True
    if not language.startswith("en"):
        return False
    words = _WORD.findall(stripped.lower())
    if not words:
        return False
    return words[-1] in _NEEDS_MORE or (words[-1] in _NEEDS_MORE_UNPUNCTUATED and not _TERMINAL.search(stripped))


def needs_continuation(word: str) -> bool:
    """A word after which speech cannot pause naturally ("the", "of", "and", "is", ...)."""
    w = word.strip().strip(",.?!;:").lower()
    return w in _NEEDS_MORE or w in _NEEDS_MORE_UNPUNCTUATED
