"""Talk2DINO's learned projection ψ: CLIP text space (512) -> DINOv2 patch space (D)."""
from __future__ import annotations

import os

import torch

from talk2dino_ros.model.checkpoints import (StateDict, load_into, load_state_dict_file,
                                          malformed_checkpoint, require_keys)
from talk2dino_ros.errors import CheckpointError

PROJ_KEYS = ('linear_layer.weight', 'linear_layer.bias', 'hidden_layers.0.weight', 'hidden_layers.0.bias')


class ProjectionHead(torch.nn.Module):
    """ψ(t) = W₂ · tanh(W₁ t + b₁) + b₂ (released layout: ``linear_layer``, ``hidden_layers.0``).

    No output normalisation: callers L2-normalise (after template averaging at inference).
    """

    def __init__(self, in_dim: int = 512, out_dim: int = 768):
        super().__init__()
        self.linear_layer = torch.nn.Linear(in_dim, out_dim)
        self.hidden_layers = torch.nn.ModuleList([torch.nn.Linear(out_dim, out_dim)])
        self.in_dim, self.out_dim = in_dim, out_dim

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        x = self.linear_layer(t)
        for layer in self.hidden_layers:
            x = layer(torch.tanh(x))
        return x


def projection_state_from_file(path: os.PathLike | str) -> StateDict:
    sd = load_state_dict_file(path, 'Talk2DINO projection')
    # the authors' loader accepts the legacy name of the hidden layer
    sd = {k.replace('linear_layer2.', 'hidden_layers.0.'): v for k, v in sd.items()}
    require_keys(sd, PROJ_KEYS, path, 'Talk2DINO projection')
    return sd


def build_projection(path: os.PathLike | str, text_dim: int | None = None,
                     dino_dim: int | None = None) -> ProjectionHead:
    """Load ψ and check it fits the text tower (input width) and the DINOv2 backbone (output width)."""
    with malformed_checkpoint(path, 'Talk2DINO projection'):
        sd = projection_state_from_file(path)
        shapes = {k: list(sd[k].shape) for k in PROJ_KEYS}
        if sd['linear_layer.weight'].ndim != 2 or any(sd[k].ndim != 1 for k in PROJ_KEYS if k.endswith('bias')):
            raise CheckpointError(f'Talk2DINO projection file {path} has wrong tensor ranks: {shapes}')
        out_dim, in_dim = sd['linear_layer.weight'].shape
        if shapes['linear_layer.bias'] != [out_dim] or shapes['hidden_layers.0.bias'] != [out_dim]:
            raise CheckpointError(f'Talk2DINO projection file {path} has inconsistent widths: {shapes}')
        if tuple(sd['hidden_layers.0.weight'].shape) != (out_dim, out_dim):
            raise CheckpointError(f'Talk2DINO projection file {path}: hidden_layers.0.weight is '
                                  f'{list(sd["hidden_layers.0.weight"].shape)}, expected [{out_dim}, {out_dim}]')
        if text_dim is not None and in_dim != text_dim:
            raise CheckpointError(f'Talk2DINO projection file {path} takes {in_dim}-d text but the CLIP text tower '
                                  f'gives {text_dim}-d embeddings')
        if dino_dim is not None and out_dim != dino_dim:
            hint = {768: 'vitb_mlp_infonce.pth', 1024: 'vitl_mlp_infonce.pth'}.get(dino_dim, 'a matching ψ')
            raise CheckpointError(f'Talk2DINO projection file {path} maps to {out_dim}-d but the DINOv2 backbone '
                                  f'is {dino_dim}-d (use {hint})')
        head = ProjectionHead(int(in_dim), int(out_dim))
        extra = sorted(set(sd) - set(head.state_dict()))
        if extra:
            raise CheckpointError(f'Talk2DINO projection file {path} has unexpected keys {extra[:4]}')
        load_into(head, {k: v.float() for k, v in sd.items()}, path, 'Talk2DINO projection')
        return head.eval().requires_grad_(False)
