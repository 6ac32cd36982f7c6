"""The `keras-recipes` command.

    keras-recipes --help
    keras-recipes --version
    keras-recipes recipes                 # the runnable scripts, one line each
    keras-recipes optimizers              # every optimizer name get_optimizer takes
    keras-recipes export --checkpoint model.keras --format saved_model --out saved_models/NAME
    keras-recipes gemma generate --checkpoint gemma-2-2b/ --prompt "..."  # also convert, export
    keras-recipes serve check saved_models/NAME   # as TF Serving loads it, warm-ups replayed

Every subcommand's arguments are declared here; the module doing the work is
imported inside its handler, so `--help` answers without loading TensorFlow,
and TensorFlow's start-up log is silenced before it is.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from keras_recipes import __version__, quiet_tensorflow
from keras_recipes.train_flags import add_llama_train_arguments

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


def recipe_summaries(recipes_dir: Path = RECIPES_DIR) -> list[tuple[str, str]]:
    """(script name, one-line description) for each recipe, from its docstring."""
    rows = []
    for path in sorted(recipes_dir.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        fields = dict(
            line.split(":", 1)
            for line in doc.splitlines()
            if ":" in line and not line.startswith(" ")
        )
        summary = fields.get("Description", fields.get("Title", "")).strip()
        rows.append((path.name, summary))
    return rows


def _list_recipes(args) -> int:
    if not RECIPES_DIR.is_dir():
        print(
            "No recipes/ folder next to the package: the recipes ship with the source "
            "checkout (git clone, then `pip install -e .`)."
        )
        return 1
    rows = recipe_summaries()
    width = max((len(name) for name, _ in rows), default=0)
    for name, summary in rows:
        print(f"{name:<{width}}  {summary}")
    return 0


def _list_optimizers(args) -> int:
    from keras_recipes.optimizers import available_optimizers

    for name in available_optimizers():
        print(name)
    return 0


def _llama_train(args) -> int:
    from keras_recipes.llama.train import (
        DEFAULTS,
        QUICK,
        generate_command,
        resume_hint,
        train_llama,
    )

    overrides = {k: v for k, v in vars(args).items() if k in DEFAULTS}
    try:
        metrics = train_llama(
            args.out,
            corpus=args.corpus,
            quick=args.quick,
            strategy=args.strategy,
            overwrite=args.overwrite,
            checkpoint=args.checkpoint,
            **overrides,
        )
    except ValueError as error:
        print(f"keras-recipes llama train: {error}", file=sys.stderr)
        return 2
    except (FloatingPointError, OSError) as error:  # a NaN loss, a full disk: the backup is kept
        print(f"keras-recipes llama train: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as interrupt:
        print(f"\nInterrupted ({interrupt}). {resume_hint(args.out)}")
        return 130
    if metrics["already_trained"]:
        print(
            f"{metrics['out']} already holds a finished run with these settings: nothing to "
            "train. Pass --overwrite to train it again from scratch, or --out NEW_FOLDER."
        )
    else:
        print(f"\nSample:\n{metrics['sample']}\n")
        print(f"Saved the model, tokenizer and metrics in {metrics['out']}")
    max_new_tokens = args.max_new_tokens or (QUICK if args.quick else DEFAULTS)["max_new_tokens"]
    print(f"Generate more: {generate_command(metrics['out'], max_new_tokens)}")
    return 0


def _llama_finetune(args) -> int:
    from keras_recipes.llama.finetune import FINETUNE_DEFAULTS, finetune_llama
    from keras_recipes.llama.train import resume_hint

    overrides = {k: v for k, v in vars(args).items() if k in FINETUNE_DEFAULTS}
    export_format = args.merge_format if args.merge_format in ("saved_model", "tflite") else None
    try:
        metrics = finetune_llama(
            args.checkpoint,
            args.data,
            args.out,
            tokenizer=args.tokenizer,
            merge=args.merge or export_format is not None,
            merge_format="keras" if export_format else args.merge_format,
            quick=args.quick,
            strategy=args.strategy,
            overwrite=args.overwrite,
            **overrides,
        )
    except ValueError as error:
        print(f"keras-recipes llama finetune: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(f"\nInterrupted ({interrupt}). {resume_hint(args.out)}")
        return 130
    if metrics["already_trained"]:
        print(
            f"{metrics['out']} already holds a finished fine-tune with these settings: nothing "
            "to train. Pass --overwrite to train it again, or --out NEW_FOLDER."
        )
    else:
        what = "adapter.safetensors" if args.lora else "model.keras"
        print(
            f"Trained {metrics['trainable_parameters']:,} of {metrics['parameters']:,} "
            f"parameters on {metrics['train_examples']} examples; loss "
            f"{metrics['final_loss']:.4f}."
        )
        print(f"Saved {what}, the tokenizer and metrics in {metrics['out']}")
    if metrics.get("merged"):
        print(f"Merged model: {metrics['merged']}")
    if export_format:
        from keras_recipes.llama.checkpoints import load_checkpoint

        merged, out = load_checkpoint(metrics["merged"]), Path(metrics["out"])
        if export_format == "saved_model":
            from keras_recipes.export import export_saved_model

            tokenizer = out / "tokenizer.model"
            path = export_saved_model(
                merged, out / "saved_model", tokenizer=tokenizer if tokenizer.is_file() else None
            )
        else:
            from keras_recipes.export import export_tflite

            path = export_tflite(merged, out / "merged.tflite")
        print(f"Exported the merged model: {path}")
    return 0


DEFAULT_NEW_TOKENS = 200  # `llama generate` without --max-new-tokens (capped by the context)


def stream_generate(
    model, tokenizer, prompt: list[int], out, on_first_token=None, stop_ids=None, **controls
):
    """`model.generate([prompt], stop_ids=..., **controls)`, its new text written to `out`.

    What `llama generate` prints: the text of each chunk of new tokens as it
    comes (`IncrementalDecoder`: a few tokens decoded per chunk, never the
    whole text), stopping before the end-of-sequence token; what `out`
    receives in all equals `tokenizer.decode` of the new ids after the
    prompt's text. `on_first_token()` is called when the first new token is
    there. `stop_ids` (default: the tokenizer's end id) end the text before
    them. Returns `generate`'s ids.
    """
    from keras_recipes.tokenizers.streaming import IncrementalDecoder

    decoder = IncrementalDecoder(tokenizer, prompt)
    stops = set(stop_ids if stop_ids is not None else [tokenizer.eos_id])
    started = ended = False

    def stream(tokens):
        nonlocal started, ended
        if not started and on_first_token is not None:
            on_first_token()
        started = True
        new = tokens[0, len(decoder.ids) :].tolist()
        if ended or not new:
            return
        ends = [k for k, token in enumerate(new) if token in stops]
        if ends:
            new, ended = new[: ends[0]], True
        out.write(decoder.push(new))
        out.flush()

    ids = model.generate([prompt], stop_ids=sorted(stops), callback=stream, **controls)
    out.write(decoder.finish())
    out.flush()
    return ids


def _load_model_and_tokenizer(args, load_checkpoint, who: str):
    """The checkpoint's model and tokenizer (`--tokenizer`, or the one beside it)."""
    from keras_recipes.tokenizers import find_tokenizer, load_tokenizer

    if not Path(args.checkpoint).exists():
        raise ValueError(
            f"No checkpoint at {args.checkpoint}: give a .keras file"
            + (", a llama2.c .bin" if who.startswith("llama") else "")
            + " or a Hugging Face folder."
        )
    tokenizer_path = args.tokenizer or find_tokenizer(args.checkpoint)
    if tokenizer_path is None:
        raise ValueError(
            f"No tokenizer.model, tokenizer.bin or tokenizer.json next to {args.checkpoint}; "
            "pass --tokenizer."
        )
    model = load_checkpoint(args.checkpoint)
    return model, load_tokenizer(tokenizer_path, vocab_size=model.config.vocab_size)


def _stop_ids(tokenizer, checkpoint) -> list[int]:
    """The tokenizer's end id and the stop ids of the checkpoint's folder
    (generation_config.json / config.json `eos_token_id`, an int or a list)."""
    from keras_recipes.tokenizers.huggingface import folder_stop_ids

    folder = Path(checkpoint) if Path(checkpoint).is_dir() else Path(checkpoint).parent
    ids = [tokenizer.eos_id] if tokenizer.eos_id is not None else []
    return list(dict.fromkeys([*ids, *folder_stop_ids(folder)]))


def _chat_settings(args, model, tokenizer):
    """The generation settings of `llama chat` / `generate --chat` from the flags."""
    from keras_recipes.causal_lm import GenerationConfig

    max_new_tokens = args.max_new_tokens
    if max_new_tokens is None:
        max_new_tokens = min(DEFAULT_NEW_TOKENS, model.config.max_seq_len)
    return GenerationConfig(
        max_new_tokens=max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop_ids=[*_stop_ids(tokenizer, args.checkpoint), *(args.stop_id or [])],
    )


def _chat_turn(chat, text: str) -> None:
    """One streamed reply of `chat` to `text` on stdout."""
    chat.send(text, stream=lambda piece: print(piece, end="", flush=True))
    print(flush=True)


def _llama_chat(args) -> int:
    """An interactive chat: one user turn per line of stdin, replies streamed."""
    from keras_recipes.causal_lm.chat import Chat
    from keras_recipes.llama.checkpoints import load_checkpoint

    model, tokenizer = _load_model_and_tokenizer(args, load_checkpoint, "llama chat")
    settings = _chat_settings(args, model, tokenizer)
    chat = Chat(model, tokenizer, system=args.system, settings=settings)
    interactive = sys.stdin.isatty()
    print(
        "Chat with the model: a line is one turn; /reset starts over, /exit (or end of input) "
        "quits.",
        file=sys.stderr,
    )
    while True:
        if interactive:
            print("> ", end="", flush=True)
        line = sys.stdin.readline()
        if not line:
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        if text.strip() in ("/exit", "/quit"):
            break
        if text.strip() == "/reset":
            chat.reset()
            print("(conversation reset)", file=sys.stderr)
            continue
        try:
            _chat_turn(chat, text)
        except ValueError as error:
            print(f"keras-recipes llama chat: {error}", file=sys.stderr)
    return 0


def _llama_generate(args) -> int:
    from keras_recipes.llama.checkpoints import load_checkpoint

    return _generate(args, load_checkpoint, "llama generate")


def _gemma_generate(args) -> int:
    from keras_recipes.gemma.checkpoints import load_checkpoint

    return _generate(args, load_checkpoint, "gemma generate")


def _generate(args, load_checkpoint, who: str) -> int:
    """`keras-recipes FAMILY generate`: `load_checkpoint(path)` gives the family's model."""
    import time

    try:
        model, tokenizer = _load_model_and_tokenizer(args, load_checkpoint, who)
        if args.chat:
            from keras_recipes.causal_lm.chat import Chat

            settings = _chat_settings(args, model, tokenizer)
            _chat_turn(Chat(model, tokenizer, system=args.system, settings=settings), args.prompt)
            return 0
        if args.system:
            raise ValueError("--system applies with --chat only.")
        stop_ids = list(
            dict.fromkeys([*_stop_ids(tokenizer, args.checkpoint), *(args.stop_id or [])])
        )
        prompt = tokenizer.encode(args.prompt, add_bos=True)
        room = model.config.max_seq_len - len(prompt)
        if room < 1:
            raise ValueError(
                f"the prompt is {len(prompt)} tokens and the model's context is "
                f"{model.config.max_seq_len}; shorten the prompt."
            )
        # Unset: up to DEFAULT_NEW_TOKENS, as many as the context leaves.
        max_new_tokens = args.max_new_tokens
        if max_new_tokens is None:
            max_new_tokens = min(DEFAULT_NEW_TOKENS, room)
        print(tokenizer.decode(prompt), end="", flush=True)
        start, first_token_at = time.perf_counter(), []
        out = stream_generate(
            model,
            tokenizer,
            prompt,
            sys.stdout,
            max_new_tokens=max_new_tokens,
            temperature=args.temperature,
            top_k=args.top_k,
            top_p=args.top_p,
            seed=args.seed,
            stop_ids=stop_ids,
            on_first_token=lambda: first_token_at.append(time.perf_counter()),
        )
    except ValueError as error:
        print(f"keras-recipes {who}: {error}", file=sys.stderr)
        return 2
    end = time.perf_counter()
    new = out[0, len(prompt) :].tolist()
    ends = [k for k, token in enumerate(new) if token in stop_ids]
    produced = ends[0] + 1 if ends else len(new)
    first = first_token_at[0] if first_token_at else end
    rate = (produced - 1) / (end - first) if produced > 1 and end > first else float("nan")
    print()
    print(
        f"\n{produced} tokens; first after {first - start:.2f} s (prefill, compiling), "
        f"then {rate:.1f} tokens/s",
        file=sys.stderr,
    )
    return 0


def _llama_convert(args) -> int:
    from keras_recipes.llama.checkpoints import load_checkpoint, save_checkpoint

    source, target = Path(args.input), Path(args.output)
    try:
        if target.suffix == ".gguf":
            from keras_recipes.tokenizers import find_tokenizer

            tokenizer = args.tokenizer or find_tokenizer(source)
            if tokenizer is None:  # refused before the model is read
                raise ValueError(
                    f"no tokenizer beside {source}: llama.cpp needs one in the GGUF file; "
                    "pass --tokenizer (a .model, tokenizer.bin or tokenizer.json)."
                )
        if source.suffix == ".gguf":
            from keras_recipes.export.gguf import load_gguf

            model = load_gguf(source)
        else:
            model = load_checkpoint(source)
        if target.suffix == ".gguf":
            from keras_recipes.export.gguf import save_gguf

            path = save_gguf(model, target, tokenizer=tokenizer, dtype=args.gguf_type)
        else:
            from keras_recipes.tokenizers import find_tokenizer, load_tokenizer

            # A Hugging Face folder's config.json names the tokenizer's bos/eos ids.
            found = None if target.suffix else args.tokenizer or find_tokenizer(source)
            tokenizer = (
                None if found is None else load_tokenizer(found, vocab_size=model.config.vocab_size)
            )
            path = save_checkpoint(
                model, target, llama2c_version=args.llama2c_version, tokenizer=tokenizer
            )
    except ValueError as error:
        print(f"keras-recipes llama convert: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {path} ({model.count_params():,} parameters).")
    return 0


def _gemma_convert(args) -> int:
    from keras_recipes.gemma.checkpoints import load_checkpoint, save_checkpoint

    model = load_checkpoint(args.input)
    path = save_checkpoint(model, args.output)
    print(f"Wrote {path} ({model.count_params():,} parameters).")
    return 0


def _load_for_export(checkpoint: Path, family: str | None):
    """The model a checkpoint holds: a `.keras` file, or a family's checkpoint by name
    (`family`, or a Hugging Face folder's `model_type`)."""
    import json

    import keras

    if checkpoint.suffix == ".keras" and family is None:
        return keras.models.load_model(checkpoint)
    config = checkpoint / "config.json"
    if family is None and config.is_file():
        try:
            model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
        except (ValueError, AttributeError):
            model_type = None  # the family's loader says what is wrong with it
        family = "gemma" if model_type == "gemma2" else None
    if family == "gemma":
        from keras_recipes.gemma.checkpoints import load_checkpoint
    else:
        from keras_recipes.llama.checkpoints import load_checkpoint
    return load_checkpoint(checkpoint)


def _export(args) -> int:
    import keras_recipes.seq2seq  # noqa: F401  (registers Seq2Seq for load_model)
    from keras_recipes.causal_lm import is_causal_lm

    checkpoint = Path(args.checkpoint)
    try:
        if not checkpoint.exists():
            raise ValueError(f"No checkpoint at {checkpoint}.")
        model = _load_for_export(checkpoint, getattr(args, "family", None))
        if args.format == "saved_model":
            from keras_recipes.export import export_saved_model

            if args.quantize:
                raise ValueError("--quantize applies to --format tflite only.")
            tokenizer = args.tokenizer
            beside = [checkpoint.with_name("tokenizer.model")]
            if checkpoint.is_dir():  # a Hugging Face folder: its SentencePiece or tokenizer.json
                beside = [checkpoint / "tokenizer.model", checkpoint / "tokenizer.json"]
            found = [path for path in beside if path.is_file()]
            if tokenizer is None and is_causal_lm(model) and found:
                tokenizer = found[0]
            from keras_recipes.serving.docker import serving_command

            path = export_saved_model(model, args.out, version=args.version, tokenizer=tokenizer)
            print(f"Wrote {path}. Serve it with:\n  {serving_command(path.parent)}")
        elif args.format == "litertlm":
            from keras_recipes.export import export_litertlm
            from keras_recipes.tokenizers import find_tokenizer

            if args.quantize not in (None, "dynamic-int8"):
                raise ValueError("--format litertlm takes --quantize dynamic-int8 or none.")
            tokenizer = args.tokenizer or find_tokenizer(checkpoint)
            if tokenizer is None:
                raise ValueError(
                    f"no tokenizer beside {checkpoint}: a .litertlm bundle carries one; pass "
                    "--tokenizer (a SentencePiece .model or a tokenizer.json)."
                )
            out = Path(args.out)
            out = out if out.suffix == ".litertlm" else out.with_suffix(".litertlm")
            path = export_litertlm(model, out, tokenizer=tokenizer, quantize=args.quantize)
            print(f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB).")
        else:
            from keras_recipes.export import export_tflite

            out = Path(args.out)
            out = out if out.suffix == ".tflite" else out.with_suffix(".tflite")
            path = export_tflite(model, out, quantize=args.quantize)
            print(f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB).")
    except ValueError as error:
        print(f"keras-recipes export: {error}", file=sys.stderr)
        return 2
    return 0


def _serve_check(args) -> int:
    from keras_recipes.serving import ServingError, check_saved_model
    from keras_recipes.serving.check import describe, version_folder

    try:
        version = version_folder(args.dir)
        print(f"Loading {version} with TensorFlow's C++ session loader (as TF Serving does)...")
        replays = check_saved_model(version, timeout=args.timeout, allow_xla=args.xla)
    except ServingError as error:
        print(f"keras-recipes serve check: {error}", file=sys.stderr)
        return 1
    for replay in replays:
        print(f"{replay.signature}: warm-up request replayed")
        for key, value in sorted(replay.inputs.items()):
            print(f"    in  {key}: {describe(value)}")
        for key, value in sorted(replay.outputs.items()):
            print(f"    out {key}: {describe(value)}")
    names = sorted({replay.signature for replay in replays})
    print(f"OK: {len(replays)} warm-up requests ({', '.join(names)}) answered.")
    print(f"TF Serving's loader serves {version}.")
    return 0


def _add_generate_arguments(
    parser: argparse.ArgumentParser, checkpoint_help: str, chat: str | None = "flag"
) -> None:
    """The flags of `FAMILY generate` (chat="flag": with `--chat`) and of
    `llama chat` (chat="command": no `--prompt`, sampling at 0.7)."""
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help=checkpoint_help,
    )
    parser.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="SentencePiece .model, llama2.c tokenizer.bin or Hugging Face tokenizer.json "
        "(default: the one next to the checkpoint)",
    )
    if chat != "command":
        parser.add_argument("--prompt", default="Once upon a time", help="text to continue")
    parser.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help=f"default: {DEFAULT_NEW_TOKENS}, or what the model's context leaves after the prompt",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.7 if chat == "command" else 0.8,
        help="0 for greedy decoding",
    )
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--top-p", type=float, default=0.9)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--stop-id",
        type=int,
        action="append",
        metavar="ID",
        help="one more id that ends generation (repeatable); the tokenizer's end token and "
        "the folder's generation_config.json eos_token_id list always stop",
    )
    parser.add_argument(
        "--system", default=None, help="chat: the system message that opens the conversation"
    )
    if chat == "flag":
        parser.add_argument(
            "--chat",
            action="store_true",
            help="the prompt is one user turn, written with the tokenizer's chat template "
            "(tokenizer_config.json); the assistant's reply is streamed",
        )


def _add_export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="a .keras file, a LLaMA checkpoint, or a Hugging Face folder (LLaMA or Gemma 2)",
    )
    parser.add_argument(
        "--format", choices=("saved_model", "tflite", "litertlm"), default="saved_model"
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="saved_model: the model folder (saved_models/NAME, versions inside); "
        "tflite: the .tflite file; litertlm: the .litertlm file",
    )
    parser.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="SentencePiece .model for LLaMA's generate_text signature; litertlm: a .model "
        "or tokenizer.json to bundle (default: the tokenizer next to the checkpoint, if there)",
    )
    parser.add_argument("--version", type=int, default=None, help="default: the next one")
    parser.add_argument(
        "--quantize",
        choices=("dynamic-int8", "float16"),
        default=None,
        help="tflite (both) and litertlm (dynamic-int8) only",
    )


def _add_finetune_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="the model to fine-tune: .keras, llama2.c .bin or Hugging Face folder",
    )
    parser.add_argument(
        "--data",
        required=True,
        metavar="PATH",
        help='.jsonl, one example a line: {"messages": [{"role": "user", "content": ...}, ...]}, '
        '{"prompt": ..., "completion": ...} or {"text": ...}; or a .txt file, one text a line. '
        "The loss is on assistant turns / completions only",
    )
    parser.add_argument("--out", default="runs/llama_finetune", help="run folder")
    parser.add_argument(
        "--tokenizer", metavar="PATH", help="default: the tokenizer beside the checkpoint"
    )
    parser.add_argument(
        "--lora",
        type=int,
        metavar="RANK",
        help="train LoRA adapters of this rank (saved alone as adapter.safetensors); "
        "without it every weight trains (model.keras)",
    )
    parser.add_argument("--lora-alpha", type=float, help="LoRA scale alpha/rank (default: rank)")
    parser.add_argument(
        "--lora-targets",
        nargs="+",
        metavar="NAME",
        help="projections to adapt among wq wk wv wo w1 w2 w3 (default: wq wv)",
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="also write the model with the adapters folded in (default format: the checkpoint's)",
    )
    parser.add_argument(
        "--merge-format",
        choices=("hf", "llama2c", "keras", "saved_model", "tflite"),
        help="format of the merged model",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run in --out")
    for flag, type_, text in (
        ("--epochs", int, "passes over the examples"),
        ("--seq-len", int, "tokens per example (longer ones are cut; default 256)"),
        ("--batch-size", int, "examples per step"),
        ("--learning-rate", float, "peak AdamW learning rate (default 2e-4 LoRA, 2e-5 all)"),
        ("--warmup-steps", int, "linear warm-up steps"),
        ("--weight-decay", float, "AdamW decoupled weight decay (default 0)"),
        ("--clipnorm", float, "clip the global gradient norm to this"),
        ("--validation-split", float, "share of the examples held out (default 0.1)"),
        ("--backup-steps", int, "back up every this many steps"),
        ("--seed", int, "seed of the data order and the adapters' initial values"),
    ):
        parser.add_argument(flag, type=type_, help=text)
    parser.add_argument("--precision", choices=("auto", "float32", "mixed_bfloat16"))
    parser.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi-worker"),
        default="default",
        help="tf.distribute strategy, as for llama train",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-recipes",
        description="Keras 3 / TensorFlow recipes for sequence models and LLMs.",
    )
    parser.add_argument("--version", action="version", version=f"keras-recipes {__version__}")
    parser.add_argument(
        "--debug", action="store_true", help="show a Python traceback when a command fails"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    recipes = subparsers.add_parser("recipes", help="list the runnable recipes, one line each")
    recipes.set_defaults(func=_list_recipes)
    optimizers = subparsers.add_parser(
        "optimizers", help="list every optimizer name get_optimizer accepts"
    )
    optimizers.set_defaults(func=_list_optimizers)
    llama = subparsers.add_parser(
        "llama", help="train a tiny LLaMA, generate text, convert checkpoints"
    )
    llama_commands = llama.add_subparsers(dest="llama_command", metavar="COMMAND", required=True)
    llama_train = llama_commands.add_parser(
        "train",
        help="train a SentencePiece tokenizer and a tiny LLaMA (as recipes/llama_tiny.py)",
    )
    add_llama_train_arguments(llama_train)
    llama_train.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="continue training this checkpoint (.keras, llama2.c .bin or Hugging Face folder), "
        "every weight, with the tokenizer beside it; the size flags are then the checkpoint's",
    )
    llama_train.set_defaults(func=_llama_train)
    llama_finetune = llama_commands.add_parser(
        "finetune",
        help="fine-tune a checkpoint on chat JSONL or text, with LoRA (--lora R) or every weight",
    )
    _add_finetune_arguments(llama_finetune)
    llama_finetune.set_defaults(func=_llama_finetune)
    llama_generate = llama_commands.add_parser(
        "generate", help="continue a prompt, streaming tokens as they are produced"
    )
    _add_generate_arguments(
        llama_generate, "a .keras file (llama train), a llama2.c .bin, or a Hugging Face folder"
    )
    llama_generate.set_defaults(func=_llama_generate)
    llama_chat = llama_commands.add_parser(
        "chat",
        help="an interactive multi-turn chat through the checkpoint's chat template "
        "(a line of input is a turn; /reset, /exit)",
    )
    _add_generate_arguments(
        llama_chat,
        "a Hugging Face chat folder (or any LLaMA checkpoint "
        "with --tokenizer naming a tokenizer.json)",
        chat="command",
    )
    llama_chat.set_defaults(func=_llama_chat)
    llama_convert = llama_commands.add_parser(
        "convert",
        help="convert a checkpoint between .keras, llama2.c .bin, Hugging Face and GGUF",
    )
    llama_convert.add_argument(
        "input", help="a .keras file, a llama2.c .bin, an HF folder or a .gguf file"
    )
    llama_convert.add_argument(
        "output",
        help="OUT.keras, OUT.bin (llama2.c), a folder name (Hugging Face) or OUT.gguf (llama.cpp)",
    )
    llama_convert.add_argument(
        "--llama2c-version",
        type=int,
        choices=(0, 1, 2),
        default=0,
        help="llama2.c file version: 0 legacy (run.c), 1 fp32, 2 int8 Q8_0 (runq.c)",
    )
    llama_convert.add_argument(
        "--gguf-type",
        choices=("f32", "f16", "q8_0"),
        default="f32",
        help="GGUF output: the type of the weight matrices (default f32)",
    )
    llama_convert.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="GGUF output: the model's tokenizer (default: the one beside the input)",
    )
    llama_convert.set_defaults(func=_llama_convert)
    gemma = subparsers.add_parser(
        "gemma", help="Gemma 2: generate text, convert checkpoints, export"
    )
    gemma_commands = gemma.add_subparsers(dest="gemma_command", metavar="COMMAND", required=True)
    gemma_generate = gemma_commands.add_parser(
        "generate", help="continue a prompt, streaming tokens as they are produced"
    )
    _add_generate_arguments(
        gemma_generate, "a .keras file or a Hugging Face Gemma 2 folder (google/gemma-2-2b)"
    )
    gemma_generate.set_defaults(func=_gemma_generate)
    gemma_convert = gemma_commands.add_parser(
        "convert", help="convert a checkpoint between .keras and Hugging Face"
    )
    gemma_convert.add_argument("input", help="a .keras file or a Hugging Face Gemma 2 folder")
    gemma_convert.add_argument("output", help="OUT.keras, or a folder name (Hugging Face)")
    gemma_convert.set_defaults(func=_gemma_convert)
    gemma_export = gemma_commands.add_parser(
        "export", help="export a Gemma checkpoint as a TF Serving SavedModel or a TFLite file"
    )
    _add_export_arguments(gemma_export)
    gemma_export.set_defaults(func=_export, family="gemma")
    export = subparsers.add_parser(
        "export",
        help="export a checkpoint as a TF Serving SavedModel, a TFLite file or a LiteRT-LM bundle",
    )
    _add_export_arguments(export)
    export.set_defaults(func=_export)
    serve = subparsers.add_parser("serve", help="check a SavedModel as TF Serving loads it")
    serve_commands = serve.add_subparsers(dest="serve_command", metavar="COMMAND", required=True)
    serve_check = serve_commands.add_parser(
        "check",
        help="load a SavedModel with TF Serving's loader (TensorFlow's C++ session loader) and "
        "replay its warm-up requests",
    )
    serve_check.add_argument(
        "dir", help="a SavedModel version folder, or a model folder (its highest version)"
    )
    serve_check.add_argument(
        "--timeout", type=float, default=600.0, help="seconds the loader may take (default 600)"
    )
    serve_check.add_argument(
        "--xla",
        action="store_true",
        help="allow XLA ops (an export with jit_compile=True; TF Serving must then run with "
        "--xla_cpu_compilation_enabled=true)",
    )
    serve_check.set_defaults(func=_serve_check)
    return parser


def _command_name(args) -> str:
    words = [
        args.command,
        getattr(args, "llama_command", None),
        getattr(args, "gemma_command", None),
        getattr(args, "serve_command", None),
    ]
    return " ".join(["keras-recipes", *[w for w in words if w]])


def main(argv: list[str] | None = None) -> int:
    """Runs one command. Errors are one line on stderr and a non-zero exit.

    A mistake in the input (a `ValueError`, a path that is missing, a folder
    where a file belongs, no permission) exits 2; anything else exits 1; an
    interrupt exits 130. `--debug` shows the traceback instead.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if args.func is not _list_recipes:
        quiet_tensorflow()
    if args.debug:
        return args.func(args) or 0
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print(f"\n{_command_name(args)}: interrupted.", file=sys.stderr)
        return 130
    except (ValueError, OSError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"{_command_name(args)}: {message}", file=sys.stderr)
        return 2
    except Exception as error:  # a bug or an unexpected failure: say what, point at --debug
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(
            f"{_command_name(args)}: {type(error).__name__}: {first} "
            "(run again with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
