"""``edgepack init``: scaffold a commented edgepack.yaml around the project's model.

The model is looked for in ``model/``, then in the project folder: ``.keras``, ``.h5``,
``.onnx``, ``.tflite`` files and SavedModel directories (holding ``saved_model.pb``).
Its IO signature is read with the model loader (TensorFlow only for Keras and
SavedModel, imported then and not before) and written into the config: the input and
output names as fields, with dtype and shape beside each.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError, EdgepackError

if TYPE_CHECKING:
    from ..runtime.signature import IOSignature, TensorSpec

_MODEL_SUFFIXES = (".keras", ".h5", ".onnx", ".tflite")
_SAVED_MODEL = "saved_model.pb"
_DEFAULT_MODEL = "model/model.keras"
_COMMENT_COLUMN = 34

STARTER = """\
# edgepack project file. Reference: README.md, "Config reference".
{name_line}
version: 0.1.0                    # monotonic; devices refuse to install a lower version

{model}
# Representative data for int8 calibration: .npz keyed by input name{input_keys}, .npy (one
# input), or a generator. Constant data (all zeros, one sample repeated) is refused unless
# allow_constant: true.
# calibration:
#   path: data/calibration.npz
#   # generator: mypkg.data:calibration_batches
#   samples: 200

# Validation data for the fidelity gate (labels optional, enable accuracy checks; labels are
# class ids, or class names when model.classes is set).
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


def find_models(root: Path) -> list[Path]:
    """Model candidates in ``root/model`` or, when it holds none, in ``root`` (sorted)."""
    model_dir = root / "model"
    if (model_dir / _SAVED_MODEL).is_file():
        return [model_dir]  # model/ is itself a SavedModel
    return _models_in(model_dir) or _models_in(root)


def _models_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return [
        entry
        for entry in sorted(folder.iterdir())
        if (entry.is_file() and entry.suffix.lower() in _MODEL_SUFFIXES)
        or (entry.is_dir() and (entry / _SAVED_MODEL).is_file())
    ]


def _choose_model(directory: Path, option: Path | None) -> Path | None:
    if option is not None:
        # Relative to DIR first (as the config's paths are), then to the current directory.
        tries = [option] if option.is_absolute() else [directory / option, option]
        for candidate in tries:
            if candidate.name == _SAVED_MODEL:
                candidate = candidate.parent
            if candidate.exists():
                return candidate
        raise ConfigError(f"model not found: {option}", where="--model")
    found = find_models(directory)
    if len(found) > 1:
        shown = ", ".join(_relative(p, directory) for p in found)
        raise ConfigError(
            f"several models found ({shown}); choose one with --model PATH", where=str(directory)
        )
    return found[0] if found else None


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def _scalar(value: str) -> str:
    """``value`` as a YAML scalar: plain when YAML reads it back unchanged, else quoted."""
    import json

    import yaml

    try:
        plain = yaml.safe_load(value) == value and "#" not in value and not value.startswith(("-", "?"))
    except yaml.YAMLError:
        plain = False
    return value if plain else json.dumps(value)


def _commented(line: str, comment: str) -> str:
    return f"{line.ljust(_COMMENT_COLUMN - 1)} # {comment}" if comment else line


def _shape(spec: TensorSpec) -> str:
    dims = ", ".join("None" if d is None else str(d) for d in spec.shape)
    return f"({dims},)" if len(spec.shape) == 1 else f"({dims})"


def _class_scores(spec: TensorSpec) -> int | None:
    if len(spec.shape) == 2 and isinstance(spec.shape[1], int) and spec.shape[1] > 1:
        return spec.shape[1]
    return None


def _model_section(rel: str, fmt: str | None, signature: IOSignature | None, note: str) -> str:
    lines = [
        "model:",
        _commented(f"  path: {_scalar(rel)}", ".keras/.h5, SavedModel dir, .onnx or .tflite"),
        _commented(f"  # format: {fmt or 'keras'}", "inferred from the path when omitted"),
    ]
    if note:
        lines += [f"  # {line}" for line in note.splitlines()]
    if signature is None:
        lines += [
            _commented("  # inputs: [image]", "rename the model's inputs (in order)"),
            _commented("  # outputs: [probabilities]", "rename the model's outputs (in order)"),
            _commented("  # classes: [cat, dog]", "class names in score order (labels may be names)"),
        ]
        return "\n".join(lines) + "\n"
    lines += [
        "  # The model's inputs and outputs, in order, as read from the file: these names are the",
        "  # fields of requests and responses and the keys of data files. Rename them here.",
        "  inputs:",
        *(_commented(f"    - {_scalar(s.name)}", f"{s.dtype} {_shape(s)}") for s in signature.inputs),
        "  outputs:",
        *(_commented(f"    - {_scalar(s.name)}", f"{s.dtype} {_shape(s)}") for s in signature.outputs),
    ]
    scores = next(((s, n) for s in signature.outputs if (n := _class_scores(s))), None)
    if scores is not None:
        spec, n = scores
        lines.append(
            _commented(
                "  # classes: [...]", f"{n} class names of {spec.name}, in score order (labels may be names)"
            )
        )
    return "\n".join(lines) + "\n"


def _read_signature(path: Path) -> tuple[str | None, IOSignature | None, str]:
    """(format, signature, note): the note says why the signature could not be read."""
    from ..model.loader import infer_format, load_model

    fmt = None
    try:
        fmt = infer_format(path)
        source: Any = load_model(path, fmt)
        return fmt, source.artifact.signature, ""
    except EdgepackError as e:
        return fmt, None, f"edgepack init could not read this model's inputs and outputs:\n{e.hint()}"


@click.command()
@click.option("--dir", "directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", help="Project name (default: the directory name).")
@click.option(
    "--model",
    "model_option",
    type=click.Path(path_type=Path),
    help="The model file or SavedModel directory (relative to DIR or the current directory); "
    "needed when DIR holds several.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing edgepack.yaml.")
def init(directory: Path, name: str | None, model_option: Path | None, force: bool) -> None:
    """Write a commented starter edgepack.yaml into DIR, filled in from its model.

    The model is found in DIR/model/, then DIR (.keras, .h5, .onnx, .tflite, SavedModel);
    its input and output names and shapes go into the config.
    """
    from ..config import CONFIG_FILE, parse_project_file

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CONFIG_FILE
    if path.exists() and not force:
        raise ConfigError("already exists (use --force to overwrite)", where=str(path))
    raw = (name or directory.resolve().name).lower()
    project_name = "".join(c if c.isalnum() else "-" for c in raw).strip("-") or "model"

    model = _choose_model(directory, model_option)
    if model is None:
        rel, fmt, signature = _DEFAULT_MODEL, None, None
        note = (
            f"No model found in {directory}/model or {directory}: put yours at this path\n"
            "or change it, then run `edgepack init --force` to fill in its inputs and outputs."
        )
        click.echo(f"no model found in {directory}; wrote the template for {rel}", err=True)
    else:
        rel = _relative(model, directory)
        fmt, signature, note = _read_signature(model)
        if signature is None:
            click.echo(f"warning: {note.splitlines()[-1]}", err=True)
    text = STARTER.format(
        name=project_name,
        name_line=_commented(f"name: {project_name}", "lowercase, used in artifact names"),
        model=_model_section(rel, fmt, signature, note),
        input_keys=f" ({', '.join(signature.input_names)})" if signature else "",
    )
    parse_project_file(text, str(path))  # what init writes must load
    path.write_text(text, encoding="utf-8")
    click.echo(f"wrote {path}")
    if signature is not None:
        ins = ", ".join(f"{s.name} {s.dtype} {_shape(s)}" for s in signature.inputs)
        outs = ", ".join(f"{s.name} {s.dtype} {_shape(s)}" for s in signature.outputs)
        click.echo(f"model {rel} ({fmt}): inputs {ins}; outputs {outs}")
