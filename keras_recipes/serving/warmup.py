"""TF Serving warm-up records: one `PredictionLog` per signature.

TF Serving replays `assets.extra/tf_serving_warmup_requests` (a TFRecord
file of `PredictionLog` protos) when it loads a version, so the first real
request does not pay for graph initialization.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

WARMUP_FILE = "assets.extra/tf_serving_warmup_requests"


def write_warmup_requests(path: str | os.PathLike, model_name: str, examples: dict) -> Path:
    """Write one PredictRequest per signature as a TFRecord of PredictionLogs.

    Args:
        path: the file to write (`<version>/assets.extra/tf_serving_warmup_requests`).
        model_name: str, the name the model is served under.
        examples: dict `{signature_name: {input_name: array}}`.
    """
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature_name, inputs in examples.items():
            request = predict_pb2.PredictRequest(
                model_spec=model_pb2.ModelSpec(name=model_name, signature_name=signature_name)
            )
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(log.SerializeToString())
    return path


def read_warmup_requests(path: str | os.PathLike) -> list:
    """The `(signature_name, {input: np.ndarray})` pairs of a warm-up file."""
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_log_pb2

    requests = []
    for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(record)
        request = log.predict_log.request
        inputs = {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}
        requests.append((request.model_spec.signature_name, inputs))
    return requests
