"""U-Net (Ronneberger et al. 2015), compact: ``depth`` poolings, ``base`` channels doubling."""

from __future__ import annotations

import torch
from torch import nn


def conv_block(cin: int, cout: int) -> nn.Sequential:
    """Two 3x3 convolutions with batch norm and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Input (N, C, H, W) with H, W divisible by 2**depth; output (N, 1, H, W) logits."""

    def __init__(self, in_channels: int, base: int = 16, depth: int = 3, dropout: float = 0.1):
        super().__init__()
        chans = [base * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for c in chans[:-1]:
            self.down.append(conv_block(cin, c))
            cin = c
        self.pool = nn.MaxPool2d(2)
        self.bottom = nn.Sequential(conv_block(chans[-2], chans[-1]), nn.Dropout2d(dropout))
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for c_hi, c_lo in zip(chans[:0:-1], chans[-2::-1], strict=True):
            self.up.append(nn.ConvTranspose2d(c_hi, c_lo, 2, stride=2))
            self.dec.append(conv_block(2 * c_lo, c_lo))
        self.head = nn.Conv2d(chans[0], 1, 1)
        self.divisor = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 1, H, W): encoder, bottleneck, then decoder concatenating the skips."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottom(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips), strict=True):
            x = dec(torch.cat([up(x), skip], dim=1))
        out: torch.Tensor = self.head(x)
        return out
