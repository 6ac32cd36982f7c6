"""Generation settings: one dataclass that every generation path takes, in one order.

Keras `generate`, `model.generate`, `QuantizedLlama.generate`, the TFLite
generator, the CLI and the SavedModel's export all read their controls from a
`GenerationConfig`, so the names, defaults, order and checks are written once.
Callers pass the fields as keyword arguments (`max_new_tokens` may also be
the second positional argument after the prompt); `GenerationConfig.of`
turns them into one, refusing a name that is not a field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """How to continue a prompt: length, sampler controls and when to stop.

    Args:
        max_new_tokens: int >= 0, default 64. Tokens to add to every prompt.
        temperature: float >= 0, default 0. 0 is greedy (argmax); otherwise
            logits are divided by it before sampling.
        top_k: int >= 1 or None. Sample only among the k most likely tokens.
        top_p: float in (0, 1] or None. Nucleus sampling: the smallest set of
            most likely tokens whose probability reaches `top_p`.
        seed: int or None. Same seed, same samples (None draws one).
        stop_ids: ids that end a sequence (e.g. a tokenizer's EOS and a chat
            model's end-of-turn), an int or any iterable of ints. A sequence
            stops after producing one; later positions hold `pad_id`.
        pad_id: int, default 0. Fills the left padding of shorter prompts
            and the positions after a stop id.

    Examples:

    >>> GenerationConfig(max_new_tokens=8, stop_ids=[2, 128009]).stop_ids
    (2, 128009)
    >>> GenerationConfig.of(max_new_tokens=4, eos_id=2).stop_ids  # eos_id: one stop id
    (2,)
    """

    max_new_tokens: int = 64
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop_ids: tuple[int, ...] = ()
    pad_id: int = 0

    def __post_init__(self):
        object.__setattr__(self, "stop_ids", _stop_tuple(self.stop_ids))
        who = "generate"
        if not _is_int(self.max_new_tokens):
            raise ValueError(f"{who}: max_new_tokens must be an int, got {self.max_new_tokens!r}.")
        if self.max_new_tokens < 0:
            raise ValueError(f"{who}: max_new_tokens must be >= 0, got {self.max_new_tokens}.")
        check_sampling(self.temperature, self.top_k, self.top_p, who)
        if self.seed is not None and not _is_int(self.seed):
            raise ValueError(f"{who}: seed must be an int or None, got {self.seed!r}.")
        if not _is_int(self.pad_id):
            raise ValueError(f"{who}: pad_id must be an int, got {self.pad_id!r}.")

    @classmethod
    def of(cls, settings: GenerationConfig | None = None, **fields) -> GenerationConfig:
        """`settings` (or the defaults) with `fields` replaced; `eos_id=` adds one stop id."""
        eos_id = fields.pop("eos_id", None)
        unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            names = ", ".join(f.name for f in dataclasses.fields(cls))
            raise TypeError(
                f"generate: unknown setting(s) {', '.join(unknown)}; the settings are {names} "
                "(and eos_id, one stop id)."
            )
        merged = dataclasses.replace(settings if settings is not None else cls(), **fields)
        extra = tuple(i for i in _stop_tuple(eos_id) if i not in merged.stop_ids)
        return dataclasses.replace(merged, stop_ids=merged.stop_ids + extra) if extra else merged

    def check_ids(self, vocab_size: int, who: str = "generate") -> None:
        """Raises a ValueError for a stop or pad id outside `[0, vocab_size)`."""
        for name, values in (("stop_ids", self.stop_ids), ("pad_id", (self.pad_id,))):
            bad = [i for i in values if not 0 <= i < vocab_size]
            if bad:
                raise ValueError(f"{who}: {name} holds {bad[0]}, outside [0, {vocab_size}).")


def _stop_tuple(stop_ids) -> tuple[int, ...]:
    if stop_ids is None:
        return ()
    if _is_int(stop_ids):
        return (int(stop_ids),)
    if isinstance(stop_ids, (str, bytes)) or not isinstance(stop_ids, Iterable):
        raise ValueError(f"generate: stop_ids must be an int or a list of ints, got {stop_ids!r}.")
    ids = list(stop_ids)
    if not all(_is_int(i) for i in ids):
        raise ValueError(f"generate: stop_ids must hold ints, got {ids!r}.")
    return tuple(dict.fromkeys(int(i) for i in ids))


def check_sampling(temperature, top_k, top_p, who: str = "generate") -> None:
    """Raises a ValueError naming a control outside its range."""
    if temperature is None or not temperature >= 0 or temperature == float("inf"):
        raise ValueError(f"{who}: temperature must be >= 0 (0 = greedy), got {temperature}.")
    if top_k is not None and (not _is_int(top_k) or top_k < 1):
        raise ValueError(f"{who}: top_k must be a positive int or None, got {top_k!r}.")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"{who}: top_p must be in (0, 1] or None, got {top_p}.")
