"""TF Serving: its loader, a check before deploying, a client, `models.config`, a stand-in.

- `SavedModelSession(path)`: a SavedModel loaded by TensorFlow's C++
  session loader, the one TF Serving runs (`TF_LoadSessionFromSavedModel`
  through the C API in the tensorflow wheel), answering by SignatureDef.
- `check_saved_model(path)`: replays the export's warm-up requests through
  that loader in a fresh process that loads no op library but
  tensorflow-text's; `keras-recipes serve check DIR` prints the answers.
- `TFServingClient(url)`: REST predict (row `instances` and columnar
  `inputs` bodies), model status and metadata, and gRPC `Predict`.
- `write_models_config(path, models)`: the `--model_config_file` TF Serving
  reads to serve several models, with version policies and labels.
- `write_batching_parameters(path, ...)`: the `--batching_parameters_file`
  TF Serving reads with `--enable_batching` (send batched prompts to
  `generate_padded`, with their `lengths`).
- `serving_command(base_dir)`: the `docker run` line that serves an export.
- `LocalServer(base_dir)`: TF Serving's REST routes (and gRPC `Predict`) on
  127.0.0.1, answered by `SavedModelSession`: a stand-in for the model
  server in tests and demos where its binary cannot be installed.

Serve an export with Docker:

```
docker run -p 8501:8501 -p 8500:8500 \\
    -v "$PWD/saved_models/llama_tiny:/models/llama_tiny" \\
    -e MODEL_NAME=llama_tiny tensorflow/serving
curl -d '{"signature_name": "generate", "instances": [{"token_ids": [1, 5, 9],
    "max_new_tokens": 16, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}]}' \\
    localhost:8501/v1/models/llama_tiny:predict
```

Nothing here imports TensorFlow's Python package at import time.
"""

from keras_recipes.serving.batching import read_batching_parameters, write_batching_parameters
from keras_recipes.serving.check import Replay, check_saved_model, compare_outputs
from keras_recipes.serving.client import DEFAULT_GRPC_TARGET, DEFAULT_REST_URL, TFServingClient
from keras_recipes.serving.docker import serving_command
from keras_recipes.serving.local_server import LocalServer
from keras_recipes.serving.models_config import read_models_config, write_models_config
from keras_recipes.serving.rest import rest_predict, signature_metadata
from keras_recipes.serving.session import SavedModelSession, ServingError
from keras_recipes.serving.warmup import WARMUP_FILE, read_warmup_requests, write_warmup_requests

__all__ = [
    "DEFAULT_GRPC_TARGET",
    "DEFAULT_REST_URL",
    "WARMUP_FILE",
    "LocalServer",
    "Replay",
    "SavedModelSession",
    "ServingError",
    "TFServingClient",
    "check_saved_model",
    "compare_outputs",
    "read_batching_parameters",
    "read_models_config",
    "read_warmup_requests",
    "rest_predict",
    "serving_command",
    "signature_metadata",
    "write_batching_parameters",
    "write_models_config",
    "write_warmup_requests",
]
