"""Chat templates: a conversation as the text a chat model was trained on.

A chat model's `tokenizer_config.json` holds a Jinja template
(`chat_template`) that writes a list of messages (`{"role": "user",
"content": "..."}`) as one string with the model's turn markers
(`<|start_header_id|>`, `<|im_start|>`, `<|user|>`, ...). `ChatTemplate`
renders it the way `transformers`' `apply_chat_template` does: the same
sandboxed Jinja environment (`ImmutableSandboxedEnvironment` with
`trim_blocks` and `lstrip_blocks`, the loop-controls extension), the same
`tojson` filter (no HTML escaping), the globals `raise_exception`,
`strftime_now`, `dict` and `namespace`, and the special tokens of the
tokenizer (`bos_token`, `eos_token`, ...) as variables.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime

# tokenizer_config.json keys transformers passes to a template as variables.
SPECIAL_TOKEN_KEYS = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)


def token_content(value) -> str | None:
    """A token as tokenizer_config.json gives it: a string or `{"content": ...}`."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def template_from_config(config: Mapping, name: str | None = None) -> str | None:
    """The chat template of a `tokenizer_config.json` dict, or None.

    A config may hold one template (a string) or several (a list of
    `{"name": ..., "template": ...}`); then `name` picks one, else "default".
    """
    template = config.get("chat_template")
    if isinstance(template, list):
        templates = {item.get("name"): item.get("template") for item in template}
        wanted = name or "default"
        if wanted not in templates:
            raise ValueError(
                f"tokenizer_config.json has chat templates {sorted(templates)} and none named "
                f"{wanted!r}; pass one of those names."
            )
        return templates[wanted]
    if template is not None and not isinstance(template, str):
        raise ValueError(
            f"tokenizer_config.json's chat_template is a {type(template).__name__}; it must be a "
            "string or a list of named templates."
        )
    return template


def _environment():
    import jinja2
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # Jinja's own tojson escapes HTML characters; transformers' does not.
        return json.dumps(
            value,
            ensure_ascii=ensure_ascii,
            indent=indent,
            separators=separators,
            sort_keys=sort_keys,
        )

    def strftime_now(format):
        return datetime.now().strftime(format)

    environment = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    environment.filters["tojson"] = tojson
    environment.globals["raise_exception"] = raise_exception
    environment.globals["strftime_now"] = strftime_now
    environment.globals["dict"] = dict
    environment.globals["namespace"] = jinja2.utils.Namespace
    return environment


def _plain(value):
    """`value` as plain JSON data (what a template may see)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    if hasattr(value, "item"):  # a numpy scalar
        return _plain(value.item())
    return f"<{type(value).__name__}>"


class ChatTemplate:
    """A `tokenizer_config.json` chat template, rendered as `transformers` renders it.

    Args:
        template: str, the Jinja source (`tokenizer_config.json`'s
            `chat_template`).
        special_tokens: dict, the variables the template sees besides the
            messages: `bos_token`, `eos_token`, ... as strings.

    Examples:

    >>> template = ChatTemplate(
    ...     "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}"
    ...     "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}",
    ...     {"eos_token": "</s>"},
    ... )
    >>> template.render([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    '<|user|>Hi</s><|assistant|>'
    """

    def __init__(self, template: str, special_tokens: Mapping | None = None):
        if not isinstance(template, str) or not template:
            raise ValueError("ChatTemplate: the template must be a non-empty string.")
        self.source = template
        self.special_tokens = dict(special_tokens or {})
        self._template = _environment().from_string(template)

    @classmethod
    def from_config(cls, config: Mapping, name: str | None = None) -> ChatTemplate | None:
        """The template of a `tokenizer_config.json` dict (None when it has none)."""
        template = template_from_config(config, name)
        if template is None:
            return None
        tokens = {key: token_content(config.get(key)) for key in SPECIAL_TOKEN_KEYS}
        return cls(template, {key: value for key, value in tokens.items() if value is not None})

    def render(
        self,
        messages: Sequence[Mapping],
        add_generation_prompt: bool = False,
        **variables,
    ) -> str:
        """The text of `messages`, with the assistant's header after it when
        `add_generation_prompt` is set (the prompt a model answers).

        Args:
            messages: a list of `{"role": ..., "content": ...}` dicts.
            add_generation_prompt: bool. End with the start of an
                assistant turn. Defaults to False.
            **variables: more template variables (`tools`, `documents`,
                `date_string`, ...); they override the special tokens.

        Raises:
            ValueError: a message that is not a dict with a role, or the
                template's own `raise_exception` (e.g. roles out of order).
        """
        import jinja2

        for message in messages:
            if not isinstance(message, Mapping) or "role" not in message:
                raise ValueError(
                    f"chat message {message!r}: each message is a dict with 'role' and 'content'."
                )
        context = {**self.special_tokens, **_plain(variables)}
        context.setdefault("tools", None)
        context.setdefault("documents", None)
        try:
            return self._template.render(
                # As transformers: a key whose value is None is left out.
                messages=[
                    {key: _plain(value) for key, value in m.items() if value is not None}
                    for m in messages
                ],
                add_generation_prompt=add_generation_prompt,
                **context,
            )
        except jinja2.exceptions.TemplateError as error:
            raise ValueError(f"the chat template refused this conversation: {error}") from None


def render_chat(tokenizer, messages, add_generation_prompt: bool = True, **variables) -> str:
    """`messages` rendered with the chat template of `tokenizer` (a `TokenizerJson`).

    Raises:
        ValueError: the tokenizer has no chat template.
    """
    template = chat_template_of(tokenizer)
    return template.render(messages, add_generation_prompt=add_generation_prompt, **variables)


def chat_template_of(tokenizer) -> ChatTemplate:
    """The `ChatTemplate` of a tokenizer with a `tokenizer_config.json`, or a clear error."""
    config = getattr(tokenizer, "config", None) or {}
    template = ChatTemplate.from_config(config)
    if template is None:
        where = getattr(tokenizer, "path", "this tokenizer")
        raise ValueError(
            f"{where}: no chat_template in tokenizer_config.json (nor chat_template.jinja) beside "
            "it; chat needs a chat model's tokenizer_config.json."
        )
    return template
