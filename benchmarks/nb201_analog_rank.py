"""How well does the offline table (PyPI analog-nasbench) rank cells as NAS-Bench-201 does?

Compares its CIFAR-10 accuracies with the official CIFAR-10 test accuracies (200 epochs) that
are published for individual cells, and prints the rank correlations. Needs
``pip install 'nasbench-eval[nb201-offline]'``. Run: ``python benchmarks/nb201_analog_rank.py``.

Official figures (NAS-Bench-201 paper Table 5, no local copy; values recalled, unconfirmed [U]
except the DARTS one, which issue 21 quotes): the all-skip cell is what DARTS-V1/V2 derive on
CIFAR-10 (AutoDL-Projects exps/algos-v2/README.md) and scores 54.30; the ResNet row (93.97) is
the cell AutoDL-Projects' plotting code names ``resnet``; "optimal" (94.37) is the best cell
of the table, whose string is recalled [U]; GDAS's 93.61 is the mean over its three searched
cells (listed in the same README), compared with the mean of the offline table over them.
"""
from __future__ import annotations

import sys

from scipy.stats import kendalltau, spearmanr

from nasbench_eval.oracles.nb201_analog import cifar10_accuracy, installed_path

CELLS = [
    ("all-skip (DARTS-V1/V2's cell)", 54.30,
     ["|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"]),
    ("ResNet-like", 93.97,
     ["|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"]),
    ("optimal (string recalled [U])", 94.37,
     ["|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"]),
    ("GDAS (mean of its 3 cells)", 93.61,
     ["|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_3x3~2|",
      "|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
      "|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_1x1~2|"]),
]
EXTRA = [("all nor_conv_3x3 (no official figure found)",
          "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")]


def main() -> int:
    path = installed_path()
    if path is None:
        print("the offline table is not installed: pip install 'nasbench-eval[nb201-offline]'")
        return 1
    official, offline = [], []
    print(f"offline table: {path}\n")
    print(f"{'cell':40s} {'official %':>10s} {'offline %':>10s}")
    for name, pub, archs in CELLS:
        acc = sum(cifar10_accuracy(a, str(path)) for a in archs) / len(archs)
        official.append(pub)
        offline.append(acc)
        print(f"{name:40s} {pub:10.2f} {acc:10.2f}")
    for name, arch in EXTRA:
        print(f"{name:40s} {'-':>10s} {cifar10_accuracy(arch, str(path)):10.2f}")
    rho, tau = spearmanr(official, offline)[0], kendalltau(official, offline)[0]
    print(f"\nSpearman rho {rho:.3f}, Kendall tau {tau:.3f} over {len(official)} points "
          f"(too few for a p-value worth printing)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
