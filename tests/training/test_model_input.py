"""The layout the training step hands to the model."""

from __future__ import annotations

import torch

from contraclust.training.loop import model_input


def test_images_become_channels_last_with_the_same_values() -> None:
    x = torch.randn(4, 3, 8, 8)
    y = model_input(x)
    assert not x.is_contiguous(memory_format=torch.channels_last)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(x, y)


def test_vectors_are_left_alone() -> None:
    x = torch.randn(5, 7)
    assert model_input(x) is x
