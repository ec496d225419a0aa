import glob

import pytest
import torch

from mmdfkd.apis import build_runner
from mmdfkd.apis.synthesize import build_from_checkpoint, export_image_folder
from mmdfkd.models.losses import TotalVariationLoss

from .conftest import config_path, needs_fmnist
from .runner_utils import datafree_cfg, last_checkpoint

POOL_CONFIGS = ['deepinversion/deepinversion_lenet5bn_lenet5half_fmnist.py',
                'cmi/cmi_lenet5bn_lenet5half_fmnist.py',
                'fast_dfkd/fast_dfkd_lenet5bn_lenet5half_fmnist.py']
SMALL = {'model.synthesizer.iterations': 3, 'model.synthesizer.batch_size': 20,
         'custom_hooks': []}


def test_total_variation_known_value():
    img = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    # horizontal differences: 1, 1 -> mean sq 1; vertical: 0, 0 -> 0
    assert TotalVariationLoss(p=2)(img).item() == pytest.approx(1.0)
    assert TotalVariationLoss(p=1, loss_weight=2)(img * 3).item() == pytest.approx(6.0)


@needs_fmnist
@pytest.mark.parametrize('config', POOL_CONFIGS)
def test_pool_method_trains_resumes_with_pool_and_exports(config, teacher_ckpt, tmp_path):
    CONFIG = config
    work = str(tmp_path / 'run')
    # warmup_iters=1: the first iteration only synthesises, so the student starts on a pool.
    opts = dict(SMALL, **{'model.warmup_iters': 1})
    runner = build_runner(datafree_cfg(CONFIG, work, teacher_ckpt, max_iters=2, **opts))
    runner.train()
    pool = runner.model.synthesizer.pool
    assert len(pool) == 40  # two synthesised batches of 20
    assert len(glob.glob(f'{work}/synthetic_pool/*.pt')) == 2
    # Inversion queries the teacher at every optimisation step
    assert int(runner.model.teacher_queries) >= 2 * 3 * 20
    state = {k: v.clone() for k, v in runner.model.synthesizer.state_dict().items()
             if torch.is_tensor(v)}

    cfg = datafree_cfg(CONFIG, work, teacher_ckpt, max_iters=3, resume=True, **opts)
    cfg['train_cfg']['val_interval'] = 3
    resumed = build_runner(cfg)
    seen = {}
    orig = type(resumed.model).train_step

    def spy(module_self, data, optim_wrapper):
        seen.setdefault('pool', len(module_self.synthesizer.pool))
        seen.setdefault('state', {k: v.clone() for k, v in
                                  module_self.synthesizer.state_dict().items()
                                  if torch.is_tensor(v)})
        return orig(module_self, data, optim_wrapper)

    resumed.model.train_step = spy.__get__(resumed.model)
    resumed.train()
    assert seen['pool'] == 40, 'resume must restore the pool index'
    # generator / meta generator, BN-momentum EMA, contrastive head and memory bank, counters
    assert seen['state'].keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(seen['state'][k], v), f'{k} not restored on resume'
    assert len(resumed.model.synthesizer.pool) == 60

    model = build_from_checkpoint(config_path(*CONFIG.split('/')), last_checkpoint(work))
    classes = [str(i) for i in range(10)]
    counts = export_image_folder(model, str(tmp_path / 'export'), classes)
    assert sum(counts.values()) == 60
    from mmpretrain.datasets import CustomDataset
    ds = CustomDataset(data_root=str(tmp_path / 'export'), pipeline=[])
    assert len(ds) == 60 and len(ds.CLASSES) == 10
    import os.path as osp
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        folder = osp.basename(osp.dirname(info['img_path']))
        assert int(folder.split('_')[0]) == info['gt_label']  # folder order == class index
