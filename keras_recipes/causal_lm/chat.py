"""A multi-turn chat with a causal LM: template, stop ids, streaming.

`Chat` keeps the conversation as messages, renders it with the tokenizer's
chat template (`keras_recipes.tokenizers.chat`, as `transformers` renders
it) each turn, encodes it (the begin token added unless the template wrote
it), generates until one of the stop ids (the tokenizer's end token and the
checkpoint folder's `generation_config.json` list, e.g. Llama 3's
`<|eot_id|>`), and streams the reply's text as it grows.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from keras_recipes.causal_lm.generation import generate
from keras_recipes.causal_lm.settings import GenerationConfig


class Chat:
    """A conversation with a causal LM through its tokenizer's chat template.

    Args:
        model: a causal LM (`LlamaModel`, or any model of the protocol).
        tokenizer: a tokenizer with a chat template
            (`keras_recipes.tokenizers.TokenizerJson` of a chat model's
            folder).
        system: str or None, the system message that opens every
            conversation (also after `reset`).
        settings: a `GenerationConfig` (length, sampler); its stop ids are
            added to the tokenizer's (`stop_ids_of`). Default: 256 new
            tokens, greedy.
        template_variables: dict, more variables for the template (e.g.
            Llama 3.2's `date_string`).

    With a downloaded instruct model: `chat = Chat(load_hf(folder),
    load_tokenizer(folder), system="Answer in one sentence.")`, then
    `chat.send("What is a llama?", stream=lambda text: print(text, end=""))`
    for each turn and `chat.reset()` to start over (`tests/test_llama3_chat.py`
    runs it on a tiny Llama 3.2-shaped folder).
    """

    def __init__(
        self,
        model,
        tokenizer,
        system: str | None = None,
        settings: GenerationConfig | None = None,
        template_variables: dict | None = None,
    ):
        from keras_recipes.tokenizers.chat import chat_template_of
        from keras_recipes.tokenizers.huggingface import stop_ids_of

        self.model = model
        self.tokenizer = tokenizer
        self.template = chat_template_of(tokenizer)
        self.system = system
        base = settings if settings is not None else GenerationConfig(max_new_tokens=256)
        self.settings = GenerationConfig.of(base, eos_id=list(stop_ids_of(tokenizer)))
        if not self.settings.stop_ids:
            raise ValueError(
                "Chat: the tokenizer names no end token and the folder no eos_token_id; a "
                "reply would never end. Pass settings=GenerationConfig(stop_ids=[...])."
            )
        self.template_variables = dict(template_variables or {})
        self.messages: list[dict] = []
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (the system message stays)."""
        self.messages = [{"role": "system", "content": self.system}] if self.system else []

    def prompt_ids(self, messages: list[dict] | None = None) -> list[int]:
        """The ids the model continues: `messages` (default: the conversation)
        rendered with the assistant's header at the end."""
        text = self.template.render(
            self.messages if messages is None else messages,
            add_generation_prompt=True,
            **self.template_variables,
        )
        bos = getattr(self.tokenizer, "bos_token", None)
        return self.tokenizer.encode(text, add_bos=not (bos and text.startswith(bos)))

    def send(self, text: str, stream: Callable[[str], None] | None = None) -> str:
        """Adds a user turn, generates the assistant's reply and returns it.

        Args:
            text: str, the user's message.
            stream: optional callable, given each new piece of the reply's
                text as it is generated.

        Raises:
            ValueError: the conversation no longer fits the model's context
                (`reset` starts over); the user turn is not kept.
        """
        messages = [*self.messages, {"role": "user", "content": text}]
        ids = self.prompt_ids(messages)
        context = self.model.config.max_seq_len
        room = context - len(ids)
        if room < 1:
            raise ValueError(
                f"the conversation is {len(ids)} tokens and the model's context is {context}; "
                "/reset to start over."
            )
        settings = GenerationConfig.of(
            self.settings, max_new_tokens=min(self.settings.max_new_tokens, room)
        )
        stops = set(settings.stop_ids)
        shown = ""

        def reply_of(row) -> str:
            new = [int(i) for i in row[len(ids) :]]
            ends = [k for k, i in enumerate(new) if i in stops]
            return self.tokenizer.decode(new[: ends[0]] if ends else new, skip_special_tokens=True)

        def on_token(tokens):
            nonlocal shown
            so_far = reply_of(tokens[0])
            if stream is not None and not so_far.endswith("\ufffd") and len(so_far) > len(shown):
                stream(so_far[len(shown) :])
                shown = so_far

        out = generate(self.model, [ids], settings=settings, callback=on_token)
        reply = reply_of(np.asarray(out)[0])
        if stream is not None and len(reply) > len(shown):
            stream(reply[len(shown) :])
        self.messages = [*messages, {"role": "assistant", "content": reply}]
        return reply
