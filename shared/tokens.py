"""A token count estimate for text when no tokenizer has spoken: about four characters a token.

Used where the real count is not known yet (an admission reserve) or never will be (a job cancelled
before the upstream reported its usage); the real usage replaces the estimate whenever there is one.
"""

__all__ = ["CHARS_PER_TOKEN", "estimate_tokens", "tokens_for_chars"]

CHARS_PER_TOKEN = 4


def tokens_for_chars(chars: int) -> int:
    """Ceil of ``chars / 4``."""
    return -(-chars // CHARS_PER_TOKEN)


def estimate_tokens(text: str) -> int:
    """The estimate for ``text``; 0 for empty text."""
    return tokens_for_chars(len(text))
