"""``edgepack init``: scaffold a commented edgepack.yaml."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError

_MODEL_PATTERNS = ("*.keras", "*.h5", "*.onnx", "*.tflite", "*/saved_model.pb")

STARTER = """\
# edgepack project file. Reference: README.md, "Config reference".
name: {name}                      # lowercase, used in artifact names
version: 0.1.0                    # monotonic; devices refuse to install a lower version

model:
  path: {model}                   # .keras/.h5, SavedModel dir, .onnx or .tflite
  # format: keras                 # inferred from the path when omitted
  # inputs: [image]               # rename the model's inputs (in order)
  # outputs: [probabilities]      # rename the model's outputs (in order)

# Representative data for int8 calibration: .npz keyed by input name, .npy, or a generator.
# calibration:
#   path: data/calibration.npz
#   # generator: mypkg.data:calibration_batches
#   samples: 200

# Validation data for the fidelity gate (labels optional, enable accuracy checks).
# validation:
#   path: data/validation.npz
#   labels: labels
#   thresholds:
#     min_top1_agreement: 0.98
#     max_accuracy_drop: 0.01
#     min_cosine_similarity: 0.99

targets:                          # `edgepack targets` lists them
  - lambda-x86_64
  # - name: lambda-arm64
  #   overrides: {{lambda_runtime: python3.13}}

signing:
  key: keys/dev.key               # `edgepack keys generate --out keys/dev`; never commit the .key

telemetry:
  namespace: edgepack/{name}

# hooks: hooks.py                 # optional preprocess/postprocess/on_event, packaged in
"""


def _guess_model(root: Path) -> str:
    for pattern in _MODEL_PATTERNS:
        found = sorted(root.glob(pattern)) + sorted(root.glob(f"model/{pattern}"))
        if found:
            path = found[0]
            path = path.parent if path.name == "saved_model.pb" else path
            return path.relative_to(root).as_posix()
    return "model/model.keras"


@click.command()
@click.option("--dir", "directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Project name (default: the directory name).")
@click.option("--force", is_flag=True, help="Overwrite an existing edgepack.yaml.")
def init(directory: Path, name: str | None, force: bool) -> None:
    """Write a commented starter edgepack.yaml into DIR."""
    from ..config import CONFIG_FILE

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_FILE
    if path.exists() and not force:
        raise ConfigError("already exists (use --force to overwrite)", where=str(path))
    raw = (name or directory.resolve().name).lower()
    project_name = "".join(c if c.isalnum() else "-" for c in raw).strip("-") or "model"
    path.write_text(STARTER.format(name=project_name, model=_guess_model(directory)), encoding="utf-8")
    click.echo(f"wrote {path}")
