"""SegNet (Badrinarayanan et al. 2017), compact: an encoder of ``depth`` conv blocks with
max pooling whose indices the decoder reuses for max-unpooling (no skip concatenation)."""

from __future__ import annotations

import torch
from torch import nn

from glaciermap.ml.models.unet import conv_block


class SegNet(nn.Module):
    """Input (N, C, H, W) with H, W divisible by 2**depth; output (N, 1, H, W) logits."""

    def __init__(self, in_channels: int, base: int = 16, depth: int = 3, dropout: float = 0.1):
        super().__init__()
        chans = [base * 2**i for i in range(depth)]
        self.enc = nn.ModuleList()
        cin = in_channels
        for c in chans:
            self.enc.append(conv_block(cin, c))
            cin = c
        self.pool = nn.MaxPool2d(2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2)
        self.dropout = nn.Dropout2d(dropout)
        self.dec = nn.ModuleList()
        for c_hi, c_lo in zip(chans[::-1], [*chans[-2::-1], chans[0]], strict=True):
            self.dec.append(conv_block(c_hi, c_lo))
        self.head = nn.Conv2d(chans[0], 1, 1)
        self.divisor = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 1, H, W): max-pooling encoder, then max-unpooling at the saved indices."""
        indices, sizes = [], []
        for block in self.enc:
            x = block(x)
            sizes.append(x.shape[-2:])
            x, idx = self.pool(x)
            indices.append(idx)
        x = self.dropout(x)
        for block, idx, size in zip(self.dec, reversed(indices), reversed(sizes), strict=True):
            x = block(self.unpool(x, idx, output_size=size))
        out: torch.Tensor = self.head(x)
        return out
