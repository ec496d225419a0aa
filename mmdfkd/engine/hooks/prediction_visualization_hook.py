"""mmpretrain's prediction drawing (``tools/test.py --show-dir``) for greyscale inputs too."""
from collections.abc import Sequence

from mmpretrain.engine.hooks import VisualizationHook

from mmdfkd.registry import HOOKS


@HOOKS.register_module()
class PredictionVisualizationHook(VisualizationHook):
    """:class:`mmpretrain.engine.hooks.VisualizationHook` that shows one-channel images
    (Fashion-MNIST, MNIST) in grey. mmpretrain's visualizer drops the channel axis when it
    resizes, and matplotlib then paints the intensities with its default colour map;
    repeating the channel three times keeps them grey. Other images pass through as they are.
    """

    def _draw_samples(self, batch_idx: int, data_batch: dict, data_samples: Sequence,
                      step: int = 0) -> None:
        if self.enable:
            # a list of (C, H, W) images is all the parent indexes into
            data_batch = dict(data_batch, inputs=[
                x.expand(3, -1, -1) if x.dim() == 3 and x.size(0) == 1 else x
                for x in data_batch['inputs']])
        super()._draw_samples(batch_idx, data_batch, data_samples, step)
