#!/usr/bin/env python
"""Export the zoo's PyTorch models to ONNX, with their data, into tests/zoo/committed/.

PyTorch is not a dependency of edgepack (nor of its CI): this script runs in a separate
virtualenv and its outputs are committed, so the zoo itself never imports torch::

    python3.11 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 numpy scikit-learn onnx
    /tmp/torchenv/bin/python tests/zoo/export_torch.py

Writes (each well under 1 MB):

- ``torch_cnn.onnx`` + ``torch_cnn.npz``: a small CNN on the 8x8 digits, NCHW input
  ``image`` float32 (N, 1, 8, 8), output ``probabilities`` (N, 10); dynamic batch axis.
- ``torch_int64.onnx`` + ``torch_int64.npz``: a token classifier taking int64 ids:
  ``tokens`` int64 (N, 16) -> Embedding -> mean over tokens -> Linear -> ``probabilities``
  (N, 10). The "tokens" are the digits' 64 pixel intensities (0..16) pooled 2x2 into 16
  tokens in 0..16 plus their position bucket, so it is real data and learnable.

Each ``.npz`` holds ``calibration_<input>``, ``validation_<input>`` and
``validation_labels``; make_zoo.py splits them into the project's calibration.npz and
validation.npz. Deterministic: fixed seeds, one thread, deterministic algorithms.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE / "committed"
SEED = 1234
CALIBRATION = 200
TOKENS = 16
VOCAB = 17 * TOKENS  # value 0..16 in each of 16 positions


def digits_split() -> dict[str, np.ndarray]:
    """The zoo's split of the digits (make_zoo.digits), as (n, 8, 8) images."""
    from make_zoo import digits  # numpy-only at import: fine in the torch virtualenv

    return {key: value[..., 0] if key.endswith("_x") else value for key, value in digits().items()}


def to_tokens(images: np.ndarray) -> np.ndarray:
    """(N, 8, 8) in [0, 1] -> (N, 16) int64 token ids: 2x2-pooled intensity 0..16, offset by position."""
    pooled = images.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(-1, TOKENS)
    values = np.rint(pooled * 16).astype(np.int64)
    return values + 17 * np.arange(TOKENS, dtype=np.int64)


def train(model, x, y, epochs: int, lr: float):  # type: ignore[no-untyped-def]
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(SEED)
    n = len(x)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n, 32):
            idx = perm[start : start + 32]
            opt.zero_grad()
            loss = loss_fn(model.logits(x[idx]), y[idx])
            loss.backward()
            opt.step()
    return model


def export(model, example, path: Path, input_name: str) -> None:  # type: ignore[no-untyped-def]
    import onnx
    import torch

    model.eval()
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[input_name],
        output_names=["probabilities"],
        dynamic_axes={input_name: {0: "batch"}, "probabilities": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    proto = onnx.load(str(path))
    proto.doc_string = ""
    proto.producer_version = ""  # keep the committed bytes independent of the exact torch build
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def main() -> None:
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    OUT.mkdir(exist_ok=True)
    split = digits_split()
    train_y = torch.from_numpy(split["train_y"])

    class Cnn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(1, 16, 3, padding=1),
                nn.ReLU(),
                nn.Conv2d(16, 32, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(32 * 4 * 4, 64),
                nn.ReLU(),
                nn.Linear(64, 10),
            )

        def logits(self, x: torch.Tensor) -> torch.Tensor:
            return self.features(x)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.features(x), dim=-1)

    cnn_x = lambda a: a[:, np.newaxis, :, :].astype(np.float32)  # noqa: E731  NCHW
    cnn = train(Cnn(), torch.from_numpy(cnn_x(split["train_x"])), train_y, epochs=12, lr=1e-3)
    export(cnn, torch.from_numpy(cnn_x(split["val_x"][:1])), OUT / "torch_cnn.onnx", "image")
    np.savez_compressed(
        OUT / "torch_cnn.npz",
        calibration_image=cnn_x(split["train_x"][:CALIBRATION]),
        validation_image=cnn_x(split["val_x"]),
        validation_labels=split["val_y"],
    )

    class TokenClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(VOCAB, 32)
            self.head = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))

        def logits(self, ids: torch.Tensor) -> torch.Tensor:
            return self.head(self.embed(ids).mean(dim=1))

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.logits(ids), dim=-1)

    tok = train(TokenClassifier(), torch.from_numpy(to_tokens(split["train_x"])), train_y, epochs=30, lr=3e-3)
    export(tok, torch.from_numpy(to_tokens(split["val_x"][:1])), OUT / "torch_int64.onnx", "tokens")
    np.savez_compressed(
        OUT / "torch_int64.npz",
        calibration_tokens=to_tokens(split["train_x"][:CALIBRATION]),
        validation_tokens=to_tokens(split["val_x"]),
        validation_labels=split["val_y"],
    )

    for model, x in ((cnn, cnn_x(split["val_x"])), (tok, to_tokens(split["val_x"]))):
        with torch.no_grad():
            pred = model(torch.from_numpy(x)).argmax(-1).numpy()
        print(f"{type(model).__name__}: held-out accuracy {np.mean(pred == split['val_y']):.4f}")
    for f in sorted(OUT.iterdir()):
        print(f"{f.name}: {f.stat().st_size} bytes")


if __name__ == "__main__":
    main()
