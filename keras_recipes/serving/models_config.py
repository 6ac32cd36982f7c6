"""TF Serving's `models.config`: several models, version policies and labels."""

from __future__ import annotations

import os
from pathlib import Path


def write_models_config(path: str | os.PathLike, models: list[dict]) -> Path:
    """Write a TF Serving `models.config` (a `ModelServerConfig` text proto).

    Args:
        path: the file to write; pass it to the server as
            `--model_config_file=/models/models.config`.
        models: list of dicts, one per model, with keys
            `name` (str), `base_path` (str, the folder holding the version
            folders, as the server sees it), and optionally
            `versions` (list of int: serve exactly these),
            `latest` (int: serve the newest N; the default policy is the
            newest 1), `labels` (dict `{label: version}`, e.g.
            `{"stable": 1, "canary": 2}`; each version must be served).

    Returns:
        The `Path` written. The text parses back with
        `tensorflow_serving.config.model_server_config_pb2.ModelServerConfig`.

    Examples:

    >>> import tempfile
    >>> from google.protobuf import text_format
    >>> from tensorflow_serving.config import model_server_config_pb2
    >>> scratch = tempfile.TemporaryDirectory()
    >>> path = write_models_config(f"{scratch.name}/models.config", [
    ...     {"name": "llama_tiny", "base_path": "/models/llama_tiny", "latest": 2},
    ...     {"name": "sentiment", "base_path": "/models/sentiment", "versions": [1, 2],
    ...      "labels": {"stable": 1, "canary": 2}},
    ... ])
    >>> config = text_format.Parse(path.read_text(), model_server_config_pb2.ModelServerConfig())
    >>> [(model.name, model.model_version_policy.WhichOneof("policy_choice"))
    ...  for model in config.model_config_list.config]
    [('llama_tiny', 'latest'), ('sentiment', 'specific')]
    >>> sorted(config.model_config_list.config[1].version_labels.items())
    [('canary', 2), ('stable', 1)]
    >>> scratch.cleanup()
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2 as config_pb2

    if not models:
        raise ValueError("write_models_config: give at least one model.")
    config = config_pb2.ModelServerConfig()
    names = set()
    if isinstance(models, (str, bytes, dict)) or not all(isinstance(m, dict) for m in models):
        raise ValueError(
            "write_models_config: `models` must be a list of dicts, e.g. "
            '[{"name": "llama", "base_path": "/models/llama"}]; got '
            f"{models!r:.80}."
        )
    for entry in models:
        unknown = set(entry) - {"name", "base_path", "versions", "latest", "labels"}
        if unknown or "name" not in entry or "base_path" not in entry:
            raise ValueError(
                f"write_models_config: each model needs `name` and `base_path`, optionally "
                f"`versions`, `latest`, `labels`; got keys {sorted(entry)}."
            )
        for key in ("name", "base_path"):
            if not isinstance(entry[key], (str, os.PathLike)) or not str(entry[key]).strip():
                raise ValueError(
                    f"write_models_config: `{key}` must be a non-empty string; got "
                    f"{entry[key]!r} (model {entry.get('name')!r})."
                )
        versions = entry.get("versions")
        if versions is not None and (
            isinstance(versions, (str, bytes))
            or not list(versions)
            or not all(_positive_int(v) for v in versions)
        ):
            raise ValueError(
                f"write_models_config: `versions` of {entry['name']!r} must be a non-empty list "
                f"of version numbers >= 1 (the folders 1, 2, ...); got {versions!r}."
            )
        if "latest" in entry and not _positive_int(entry["latest"]):
            raise ValueError(
                f"write_models_config: `latest` of {entry['name']!r} must be an int >= 1 (how "
                f"many of the newest versions to serve); got {entry['latest']!r}."
            )
        for label, version in (entry.get("labels") or {}).items():
            if not isinstance(label, str) or not label or not _positive_int(version):
                raise ValueError(
                    f"write_models_config: labels of {entry['name']!r} map a non-empty name to a "
                    f"version >= 1; got {label!r}: {version!r}."
                )
        if entry["name"] in names:
            raise ValueError(f"write_models_config: model name {entry['name']!r} given twice.")
        names.add(entry["name"])
        if "versions" in entry and "latest" in entry:
            raise ValueError(
                f"write_models_config: {entry['name']!r} gives both `versions` and `latest`; "
                "choose one version policy."
            )
        model = config.model_config_list.config.add(
            name=entry["name"], base_path=str(entry["base_path"]), model_platform="tensorflow"
        )
        served = None
        if "versions" in entry:
            served = [int(v) for v in entry["versions"]]
            model.model_version_policy.specific.versions.extend(served)
        elif "latest" in entry:
            model.model_version_policy.latest.num_versions = int(entry["latest"])
        for label, version in (entry.get("labels") or {}).items():
            if served is not None and int(version) not in served:
                raise ValueError(
                    f"write_models_config: label {label!r} of {entry['name']!r} points at "
                    f"version {version}, which its policy does not serve ({served})."
                )
            model.version_labels[str(label)] = int(version)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text_format.MessageToString(config))
    os.replace(partial, path)
    return path


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def read_models_config(path: str | os.PathLike):
    """Parse a `models.config` file into a `ModelServerConfig` proto."""
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2 as config_pb2

    from keras_recipes._text import read_text_file

    try:
        return text_format.Parse(read_text_file(path), config_pb2.ModelServerConfig())
    except text_format.ParseError as error:
        raise ValueError(
            f"{path}: not a TF Serving models.config ({error}); write it with "
            "keras_recipes.serving.write_models_config."
        ) from None
