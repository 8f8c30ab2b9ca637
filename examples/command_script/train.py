"""A plain PyTorch training script, as a team might already have one, trained by scalinglab as a command.

It knows nothing about scalinglab except the two conventions of a command trainer:
- it reads the training subset from a file of indices into its own pool (--indices), and
- it prints one JSON line per epoch ({"epoch": 3, "dev": 0.21}) and a final {"dev": ...}.
Data: scikit-learn's 8x8 handwritten digits (1,797 real scans shipped in the package), split once.
"""

import argparse
import json

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--indices", required=True, help="file with one training-pool index per line")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X_pool, X_dev, y_pool, y_dev = train_test_split(X, y, train_size=1280, stratify=y, random_state=0)
    idx = np.loadtxt(args.indices, dtype=np.int64, ndmin=1)
    x, t = torch.from_numpy(X_pool[idx]), torch.from_numpy(y_pool[idx])
    xd, td = torch.from_numpy(X_dev), torch.from_numpy(y_dev)

    torch.manual_seed(args.seed)
    net = nn.Sequential(nn.Linear(64, args.width), nn.ReLU(), nn.Linear(args.width, 10))
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    best = 1.0
    for epoch in range(1, args.epochs + 1):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), 64):  # a few steps per epoch even for a tiny subset
            b = perm[i : i + 64]
            loss = nn.functional.cross_entropy(net(x[b]), t[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            dev = (net(xd).argmax(1) != td).float().mean().item()
        best = min(best, dev)
        print(json.dumps({"epoch": epoch, "dev": dev, "train_loss": loss.item()}), flush=True)
    print(json.dumps({"dev": best, "params": sum(p.numel() for p in net.parameters())}))


if __name__ == "__main__":
    main()
