"""Train the person check on ``dataset.py``'s regions and export it to ONNX.

A three-layer convolutional network on two 32x32 channels (gray, foreground
mask; :func:`sensors.personnet.prepare`), one logit out: about 5k weights,
well under a millisecond per region through ``cv2.dnn`` on one core. Each
example's 64x64 region is shifted by up to 3 px and scaled by up to +-12 %
before the centre is cut out, and mirrored left-right half the time: the
analyzer's boxes are never exactly where the rules put them.

    .venv/bin/python tools/personnet/train.py --data /tmp/personnet.npz \\
        --out sensors/models/personnet.onnx [--hold-out SCENE]

``--hold-out`` leaves a scene out of training (to score the analyzer with
the network on a scene it never saw: ``evaluate.py``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from sensors.personnet import SIZE, prepare  # noqa: E402


class Net(nn.Module):
    """The person check: 2x32x32 in, one logit out."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),    # 16
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),   # 8
            nn.Conv2d(16, 24, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 4
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(24 * 4 * 4, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _cut(gray: np.ndarray, mask: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
    """The network's input from a 64x64 region (centre half; jittered when ``rng``)."""
    big = gray.shape[0]
    side, cx, cy, flip = big / 2.0, big / 2.0, big / 2.0, False
    if rng is not None:
        side *= rng.uniform(0.88, 1.12)
        cx += rng.uniform(-3, 3)
        cy += rng.uniform(-3, 3)
        flip = bool(rng.random() < 0.5)
    k = SIZE / side
    m = np.array([[k, 0.0, SIZE / 2.0 - k * cx], [0.0, k, SIZE / 2.0 - k * cy]])
    g = cv2.warpAffine(gray, m, (SIZE, SIZE), flags=cv2.INTER_AREA)
    ms = cv2.warpAffine(mask, m, (SIZE, SIZE), flags=cv2.INTER_AREA)
    if flip:
        g, ms = g[:, ::-1], ms[:, ::-1]
    return prepare(np.ascontiguousarray(g), np.ascontiguousarray(ms))


def main() -> None:
    """Train, print the held-out accuracy if any, export ONNX."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--hold-out", default=None)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=14)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    d = np.load(args.data)
    gray, mask, label, scene = d["gray"], d["mask"], d["label"], d["scene"]
    train = scene != args.hold_out if args.hold_out else np.ones(len(label), bool)
    ti = np.flatnonzero(train)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    # The classes are unbalanced (about three pieces per person): weigh people up.
    pos = float(label[ti].mean())
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((1 - pos) / max(pos, 1e-3)))
    for epoch in range(args.epochs):
        net.train()
        order = rng.permutation(ti)
        total = 0.0
        for start in range(0, len(order), 64):
            batch = order[start:start + 64]
            x = torch.from_numpy(np.stack([_cut(gray[i], mask[i], rng) for i in batch]))
            y = torch.from_numpy(label[batch].astype(np.float32))[:, None]
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(batch)
        if epoch % 10 == 9 or epoch == args.epochs - 1:
            print(f"epoch {epoch + 1}: loss {total / len(order):.3f}")
    net.eval()
    with torch.no_grad():
        for name, sel in [("train", train), ("held out", ~train)]:
            idx = np.flatnonzero(sel)
            if not len(idx):
                continue
            x = torch.from_numpy(np.stack([_cut(gray[i], mask[i], None) for i in idx]))
            p = torch.sigmoid(net(x))[:, 0].numpy()
            y = label[idx]
            acc = float(((p >= 0.5) == (y == 1)).mean())
            recall = float((p[y == 1] >= 0.5).mean())
            print(f"{name}: {len(idx)} regions, accuracy {acc:.3f}, people kept {recall:.3f}, "
                  f"pieces/none turned down {float((p[y == 0] < 0.5).mean()):.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(net, torch.zeros(1, 2, SIZE, SIZE), str(args.out),
                      input_names=["region"], output_names=["logit"], opset_version=13,
                      dynamo=False)
    print(f"-> {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
