import torch

from mmdfkd.engine.hooks import per_class_grid


def test_per_class_grid_puts_each_class_in_its_row():
    images = torch.stack([torch.full((1, 2, 2), float(c + 1)) for c in (0, 2, 2, 1)])
    labels = torch.tensor([0, 2, 2, 1])
    grid = per_class_grid(images, labels, num_classes=3, per_class=2)
    assert grid.shape == (1, 6, 4)
    assert (grid[:, 0:2, 0:2] == 1).all() and (grid[:, 0:2, 2:4] == 0).all()  # 1 of class 0
    assert (grid[:, 2:4, 0:2] == 2).all()  # class 1 row holds value 2 (c=1 -> 1+1)
    assert (grid[:, 4:6, :] == 3).all()  # class 2: two images
