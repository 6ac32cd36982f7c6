"""TF Serving's `--batching_parameters_file`: the `BatchingParameters` text proto.

TF Serving started with `--enable_batching --batching_parameters_file=PATH`
merges concurrent requests into one batch. `write_batching_parameters`
writes that file. The message is `tensorflow.serving.BatchingParameters`
(tensorflow_serving/servables/tensorflow/session_bundle_config.proto);
the tensorflow-serving-api wheel does not ship it, so it is declared here
with the same field names, numbers and types, and the file is printed from
a filled message, so TF Serving's text-format parser reads it.

With `pad_variable_length_inputs: true` the batcher pads the shorter
`token_ids` rows on the right with the request's first token: send
`generate_padded` (with `lengths`) rather than `generate` to a batching
server, and one value of each control per row.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from keras_recipes._io import atomic_write

BATCHING_PARAMETERS_FILE = "batching_parameters.txt"

# name: (field number, wrapper type or None for a plain field)
_FIELDS = {
    "max_batch_size": (1, "Int64Value"),
    "batch_timeout_micros": (2, "Int64Value"),
    "max_enqueued_batches": (3, "Int64Value"),
    "num_batch_threads": (4, "Int64Value"),
    "thread_pool_name": (5, "StringValue"),
    "allowed_batch_sizes": (6, None),
    "pad_variable_length_inputs": (7, None),
}


@functools.cache
def batching_parameters_class():
    """The `tensorflow.serving.BatchingParameters` message class."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    file = descriptor_pb2.FileDescriptorProto(
        name="tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
        package="tensorflow.serving",
        syntax="proto3",
        dependency=["google/protobuf/wrappers.proto"],
    )
    message = file.message_type.add(name="BatchingParameters")
    kind = descriptor_pb2.FieldDescriptorProto
    for name, (number, wrapper) in _FIELDS.items():
        field = message.field.add(name=name, number=number, label=kind.LABEL_OPTIONAL)
        if wrapper:
            field.type, field.type_name = kind.TYPE_MESSAGE, f".google.protobuf.{wrapper}"
        elif name == "allowed_batch_sizes":
            field.type, field.label = kind.TYPE_INT64, kind.LABEL_REPEATED
        else:
            field.type = kind.TYPE_BOOL
    pool.Add(file)
    descriptor = pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    return message_factory.GetMessageClass(descriptor)


def batching_parameters_text(
    max_batch_size: int = 8,
    batch_timeout_micros: int = 5000,
    num_batch_threads: int = 1,
    max_enqueued_batches: int = 100,
    pad_variable_length_inputs: bool = True,
    allowed_batch_sizes: list[int] | None = None,
) -> str:
    """The `BatchingParameters` text proto for these settings, checked as TF Serving checks them.

    Args:
        max_batch_size: int >= 1, the most rows in one merged batch.
        batch_timeout_micros: int >= 0, how long a request waits for others.
        num_batch_threads: int >= 1, batches run at once.
        max_enqueued_batches: int >= 1, batches queued before requests are refused.
        pad_variable_length_inputs: bool, default True: pad inputs of
            different widths (prompts of different lengths) to merge them.
        allowed_batch_sizes: optional increasing ints whose last is
            `max_batch_size`: batches are padded up to one of them.

    Examples:

    >>> print(batching_parameters_text(max_batch_size=4, allowed_batch_sizes=[2, 4]))
    max_batch_size {
      value: 4
    }
    batch_timeout_micros {
      value: 5000
    }
    max_enqueued_batches {
      value: 100
    }
    num_batch_threads {
      value: 1
    }
    allowed_batch_sizes: 2
    allowed_batch_sizes: 4
    pad_variable_length_inputs: true
    <BLANKLINE>
    """
    from google.protobuf import text_format

    counts = {
        "max_batch_size": (max_batch_size, 1),
        "batch_timeout_micros": (batch_timeout_micros, 0),
        "num_batch_threads": (num_batch_threads, 1),
        "max_enqueued_batches": (max_enqueued_batches, 1),
    }
    for name, (value, least) in counts.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"batching: `{name}` must be an int >= {least}; got {value!r}.")
    sizes = list(allowed_batch_sizes or [])
    if sizes and (
        any(not isinstance(s, int) or isinstance(s, bool) or s < 1 for s in sizes)
        or sizes != sorted(set(sizes))
        or sizes[-1] != max_batch_size
    ):
        raise ValueError(
            "batching: `allowed_batch_sizes` must be increasing ints >= 1 whose last is "
            f"max_batch_size ({max_batch_size}), as TF Serving requires; got {sizes!r}."
        )
    message = batching_parameters_class()()
    for name, (value, _) in counts.items():
        getattr(message, name).value = value
    message.allowed_batch_sizes.extend(sizes)
    message.pad_variable_length_inputs = bool(pad_variable_length_inputs)
    return text_format.MessageToString(message)


def write_batching_parameters(path: str | os.PathLike, **settings) -> Path:
    """Write `batching_parameters_text(**settings)` to `path` (atomically); returns the path.

    Start TF Serving with `--enable_batching --batching_parameters_file=PATH`.
    """
    path = Path(path)
    text = batching_parameters_text(**settings)
    with atomic_write(path, "w") as f:
        f.write(text)
    return path


def read_batching_parameters(path: str | os.PathLike):
    """Parse a batching parameters file into a `BatchingParameters` message."""
    from google.protobuf import text_format

    return text_format.Parse(Path(path).read_text(), batching_parameters_class()())
