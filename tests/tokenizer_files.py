"""Small tokenizer.json folders of the three kinds today's checkpoints ship,
trained here with the Hugging Face `tokenizers` library (no download).

Each uses the normalizer, pre-tokenizer, decoder and added tokens of the real
file it stands in for, and the real chat template:

- `llama3_folder`: Llama 3.x (split pattern of tiktoken's cl100k, byte-level
  BPE with `ignore_merges`, `<|begin_of_text|>` ... `<|eot_id|>` after the
  trained ids), Llama 3.2 Instruct's template;
- `smollm2_folder`: SmolLM2 (GPT-2 byte-level split after single digits,
  `<|im_start|>` / `<|im_end|>`), its ChatML template;
- `tinyllama_folder`: TinyLlama / Llama 2 (SentencePiece-derived BPE with
  byte fallback, `▁` for spaces, `<s>` / `</s>`), its Zephyr-style template.

`CORPUS` is the test corpus: English, accents, CJK, emoji, code, digit runs,
whitespace runs and special tokens written inside the text.
"""

from __future__ import annotations

import json
from pathlib import Path

LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
    r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

LLAMA32_TEMPLATE = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {#- Extract the first user message so we can plug it in here #}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)

TINYLLAMA_TEMPLATE = (
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n"
    "{{ '<|user|>\n' + message['content'] + eos_token }}\n"
    "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + "
    "eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + "
    "message['content'] + eos_token }}\n{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
    "{% endfor %}"
)

LLAMA3_SPECIALS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    "<|finetune_right_pad_id|>",
    "<|step_id|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eom_id|>",
    "<|eot_id|>",
    "<|python_tag|>",
]

CORPUS = [
    "The government said on Tuesday that it would act.",
    "rose 12345 in 2024, isn't it? I'M SURE it's 3.14159 and 1,000,000.",
    "héllo wörld naïve café façade Ångström crème brûlée",
    "日本語のテキストと中文文本，还有한국어 문장。",
    "emoji 🙂🚀👩‍👩‍👧 and flags 🇫🇷 ok",
    "def f(x):\n    return x**2  # square\n\n\n\tif x >= 10: print('big')",
    "spaces   between    words and a trailing run    ",
    "   leading spaces\n\n\n  and newlines \r\n mixed\t\ttabs",
    "<|begin_of_text|>special<|eot_id|> tokens <|im_start|>inside<|im_end|> text </s> <s>",
    "numbers 1 12 123 1234 12345 123456 and ½ Ⅻ ٣٤٥",
    "He said: \"don't\" -- 'quote' ... (parens) [brackets] {braces} <tags>",
    "ſ Kelvin K and ﬁ ligature, \u00a0nbsp\u2003em\u3000ideographic",
    "mixed\u200bzero width and \x0bvertical tab and \x85next line",
    "",
    " ",
    "a",
]


def _training_text():
    from gensim.test.utils import datapath

    with open(datapath("lee_background.cor"), encoding="latin-1") as f:
        lines = [line.strip() for line in f if line.strip()]
    return lines + CORPUS * 3


def _write_folder(folder: Path, tokenizer, config: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return folder


def llama3_folder(folder: Path, vocab_size: int = 1000) -> Path:
    """A Llama 3.x-style tokenizer.json + tokenizer_config.json in `folder`."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing

    tokenizer = Tokenizer(models.BPE(ignore_merges=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(_training_text(), trainer)
    tokenizer.add_special_tokens(LLAMA3_SPECIALS)  # after the trained ids, as in Llama 3
    bos = tokenizer.token_to_id("<|begin_of_text|>")
    tokenizer.post_processor = TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)]
    )
    config = {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "chat_template": LLAMA32_TEMPLATE,
        "clean_up_tokenization_spaces": True,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    return _write_folder(folder, tokenizer, config)


def smollm2_folder(folder: Path, vocab_size: int = 800) -> Path:
    """A SmolLM2-style (GPT-2 byte-level) tokenizer.json + tokenizer_config.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(_training_text(), trainer)
    config = {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "chat_template": SMOLLM2_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "tokenizer_class": "GPT2Tokenizer",
    }
    return _write_folder(folder, tokenizer, config)


def tinyllama_folder(folder: Path, vocab_size: int = 600) -> Path:
    """A TinyLlama / Llama 2-style (SentencePiece-derived, byte fallback) tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    # Train on words split at "▁" so no merge crosses a word, as SentencePiece's.
    trainer_tokenizer = Tokenizer(models.BPE())
    trainer_tokenizer.normalizer = normalizers.Replace(" ", "▁")
    trainer_tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size)
    trainer_tokenizer.train_from_iterator(_training_text(), trainer)
    trained = json.loads(trainer_tokenizer.to_str())["model"]
    specials = ["<unk>", "<s>", "</s>"]
    pieces = specials + [f"<0x{b:02X}>" for b in range(256)]
    pieces += [piece for piece in trained["vocab"] if piece not in pieces]
    vocab = {piece: i for i, piece in enumerate(pieces)}
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
    tokenizer = Tokenizer(
        models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    )
    tokenizer.add_special_tokens(specials)
    tokenizer.normalizer = normalizers.Sequence(
        [normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")]
    )
    tokenizer.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    config = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "chat_template": TINYLLAMA_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "legacy": False,
        "tokenizer_class": "LlamaTokenizer",
    }
    return _write_folder(folder, tokenizer, config)


FOLDERS = {"llama3": llama3_folder, "smollm2": smollm2_folder, "tinyllama": tinyllama_folder}


LLAMA32_VOCAB = 128256
LLAMA32_STOP_IDS = [128001, 128008, 128009]  # <|end_of_text|>, <|eom_id|>, <|eot_id|>


def llama32_folder(folder: Path, seed: int = 0) -> Path:
    """A tiny random Hugging Face folder shaped like Llama 3.2 Instruct.

    `config.json` as Llama 3.2's (rope_scaling of type llama3, tied
    embeddings, a 128256-id vocabulary, rms_norm_eps 1e-5, explicit
    head_dim) at tiny sizes; `model.safetensors` of random weights written
    with Hugging Face's tensor names (not through this package's writer);
    the Llama 3-style tokenizer with its special tokens at 128000+ (after
    unused ids), Llama
    3.2's chat template and generation_config.json's three stop ids.
    """
    import numpy as np
    from safetensors.numpy import save_file

    llama3_folder(folder)
    spec = json.loads((folder / "tokenizer.json").read_text())
    # Unused ids up to 128000, as Llama 3's BPE vocabulary: their names hold a
    # space, which byte-level pieces never do, so no text reaches them.
    vocab = spec["model"]["vocab"]
    vocab.update({f"unused {i}": i for i in range(len(vocab), 128000)})
    renumber = {}
    for index, token in enumerate(spec["added_tokens"]):
        renumber[token["id"]] = 128000 + index
        token["id"] = 128000 + index
    for special in spec["post_processor"]["special_tokens"].values():
        special["ids"] = [renumber[i] for i in special["ids"]]
    (folder / "tokenizer.json").write_text(json.dumps(spec, ensure_ascii=False))
    hidden, layers, heads, kv_heads, head_dim, ffn = 32, 2, 4, 2, 8, 64
    config = {
        "architectures": ["LlamaForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "bos_token_id": 128000,
        "eos_token_id": LLAMA32_STOP_IDS,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": ffn,
        "max_position_embeddings": 256,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": heads,
        "num_hidden_layers": layers,
        "num_key_value_heads": kv_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-05,
        "rope_scaling": {
            "factor": 32.0,
            "high_freq_factor": 4.0,
            "low_freq_factor": 1.0,
            "original_max_position_embeddings": 64,
            "rope_type": "llama3",
        },
        "rope_theta": 500000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "vocab_size": LLAMA32_VOCAB,
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    generation = {"bos_token_id": 128000, "eos_token_id": LLAMA32_STOP_IDS, "do_sample": True}
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2))
    rng = np.random.default_rng(seed)

    def weight(*shape, scale=None):
        scale = scale if scale is not None else shape[-1] ** -0.5
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    state = {
        "model.embed_tokens.weight": weight(LLAMA32_VOCAB, hidden, scale=0.3),
        "model.norm.weight": 1.0 + weight(hidden, scale=0.1),
    }
    for i in range(layers):
        prefix = f"model.layers.{i}."
        state.update(
            {
                prefix + "input_layernorm.weight": 1.0 + weight(hidden, scale=0.1),
                prefix + "post_attention_layernorm.weight": 1.0 + weight(hidden, scale=0.1),
                prefix + "self_attn.q_proj.weight": weight(heads * head_dim, hidden),
                prefix + "self_attn.k_proj.weight": weight(kv_heads * head_dim, hidden),
                prefix + "self_attn.v_proj.weight": weight(kv_heads * head_dim, hidden),
                prefix + "self_attn.o_proj.weight": weight(hidden, heads * head_dim),
                prefix + "mlp.gate_proj.weight": weight(ffn, hidden),
                prefix + "mlp.up_proj.weight": weight(ffn, hidden),
                prefix + "mlp.down_proj.weight": weight(hidden, ffn),
            }
        )
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
