"""How much darts-2nd's clean BN handling changes its eval-mode numbers (issue 16, docs).

Our darts-2nd runs its extra forwards (virtual step, Hessian-vector product) on *copies* of
the BN running statistics, so they never move the real ones. The reference (DARTS /
RobustDARTS ``Architect``) runs three of them on the real model in train mode (the forward of
the virtual step on the training batch, and the two at w+ and w- of the finite difference),
which moves the running statistics three extra times per alpha step; its forward at w' runs
on a copy of the model. This script runs darts-2nd both ways on the same tiny setting and
seeds and prints the eval-mode ``val_acc`` / ``val_loss`` of every epoch and their difference.

    python benchmarks/darts2nd_bn_stats.py [--seeds 0,1,2] [--epochs 4]
"""
from __future__ import annotations

import argparse
import tempfile

import torch
import torch.nn.functional as F
from torch.func import functional_call

from nasbench_eval import run
from nasbench_eval.config import RunConfig
from nasbench_eval.methods.base import register
from nasbench_eval.methods.darts import Darts2nd, unrolled_alpha_grads


@register
class Darts2ndMovingBN(Darts2nd):
    """darts-2nd whose training-batch extra forwards move the real BN running statistics
    (the reference's behaviour); the validation forward at w' uses copies (its unrolled
    model is a copy)."""

    name = "darts-2nd-moving-bn"

    def alpha_grads(self, train_batch, val_batch):
        net = self.supernet
        names = [n for n, p in net.named_parameters() if p.requires_grad]
        real = dict(net.named_buffers())
        copies = {n: b.clone() for n, b in real.items()}
        keys = list(self.alphas)

        def make_loss(batch, buffers):
            x, y = batch

            def loss(w, a):
                weights = self.mixing(dict(zip(keys, a)))
                with self.autocast():
                    logits = functional_call(net, {**dict(zip(names, w)), **buffers},
                                             (x, weights))
                return F.cross_entropy(logits.float(), y)

            return loss

        bufs = [self.w_opt.state.get(p, {}).get("momentum_buffer") for p in self.w_params]
        return unrolled_alpha_grads(
            make_loss(train_batch, real), make_loss(val_batch, copies), self.w_params,
            list(self.alphas.values()), xi=self.lr, momentum=self.cfg.w_momentum,
            momentum_bufs=bufs, weight_decay=self.cfg.w_weight_decay,
            r=self.opts["hvp_r"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import csv
    from pathlib import Path

    diffs = []
    with tempfile.TemporaryDirectory() as out:
        for seed in (int(s) for s in args.seeds.split(",")):
            rows = {}
            for method in ("darts-2nd", "darts-2nd-moving-bn"):
                cfg = RunConfig(method=method, space="s3", dataset="digits", seed=seed,
                                epochs=args.epochs, layers=3, channels=8, batch_size=32,
                                max_steps_per_epoch=20, bn_recalibration_batches=5,
                                progress=False, out=out)
                d = run(cfg)
                rows[method] = list(csv.DictReader(open(Path(d) / "metrics.csv")))
            for a, b in zip(rows["darts-2nd"], rows["darts-2nd-moving-bn"]):
                dacc = float(b["val_acc"]) - float(a["val_acc"])
                diffs.append(dacc)
                print(f"seed {seed} epoch {a['epoch']}: val_acc clean {float(a['val_acc']):.4f} "
                      f"moving {float(b['val_acc']):.4f} (diff {dacc:+.4f}); val_loss clean "
                      f"{float(a['val_loss']):.4f} moving {float(b['val_loss']):.4f}; train_loss "
                      f"{float(a['train_loss']):.6f} vs {float(b['train_loss']):.6f}")
    t = torch.tensor(diffs)
    print(f"val_acc difference (moving - clean) over {len(diffs)} epochs: mean {t.mean():+.4f}, "
          f"mean |diff| {t.abs().mean():.4f}, max |diff| {t.abs().max():.4f}")


if __name__ == "__main__":
    main()
