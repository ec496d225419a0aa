"""--amp: a data-free run's updates go through each wrapper's autocast and loss scaler.

mmengine's ``AmpOptimWrapper`` refuses a CPU, so these tests use it with a CPU loss scaler
(``torch.amp.GradScaler('cpu')``, scale 1024) and, where asked, CPU bfloat16 autocast: the
same wrapper code (scaled backward, unscaling step, ``optim_context``) that ``--amp``
builds on a GPU.
"""
import uuid
from contextlib import contextmanager

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmdfkd.apis import build_runner, load_config
from mmdfkd.engine.optimizers.mixed_precision import amp_device_available
from mmdfkd.registry import MODELS, OPTIM_WRAPPERS

from .conftest import config_path
from .runner_utils import one_iteration_options

DFAD = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'


@OPTIM_WRAPPERS.register_module(force=True)
class CPUAmpOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper`` on a CPU: a CPU loss scaler, and bfloat16 autocast when
    ``dtype='bfloat16'`` (``dtype=None``: loss scaling alone, which must not change any
    update, since scaling by a power of two and back is exact)."""

    def __init__(self, dtype: str | None = None, **kwargs) -> None:
        OptimWrapper.__init__(self, **kwargs)  # AmpOptimWrapper.__init__ asserts a GPU
        self._scale_update_param = None
        self.loss_scaler = torch.amp.GradScaler('cpu', init_scale=1024.0)
        self.cast_dtype = getattr(torch, dtype) if dtype else None

    @contextmanager
    def optim_context(self, model: torch.nn.Module):
        with OptimWrapper.optim_context(self, model):
            if self.cast_dtype is None:
                yield
            else:
                with torch.autocast('cpu', dtype=self.cast_dtype):
                    yield


def _teacher_ckpt(config: str, tmp_path) -> str:
    """The config's own teacher architecture (random weights) as a checkpoint."""
    path = tmp_path / 'teacher.pth'
    if not path.exists():
        cfg = Config.fromfile(config_path(*config.split('/')))
        torch.manual_seed(0)
        teacher = MODELS.build(cfg.model.teacher.get('model', cfg.model.teacher))
        torch.save({'state_dict': teacher.state_dict()}, str(path))
    return str(path)


def _runner(config: str, tmp_path, name: str, wrapper: dict | None, **options):
    work_dir = str(tmp_path / name)
    opts = dict(one_iteration_options(config, _teacher_ckpt(config, tmp_path)), **options)
    cfg = load_config(config_path(*config.split('/')), cfg_options=opts, work_dir=work_dir)
    cfg.experiment_name = f'test_{uuid.uuid4().hex[:12]}'
    if wrapper is not None:  # what --amp does to every wrapper of the dict
        for entry in cfg.optim_wrapper.values():
            if isinstance(entry, dict) and 'optimizer' in entry:
                entry.update(wrapper)
    return build_runner(cfg)


def _trained_weights(runner) -> dict:
    runner.train()
    return {k: v.clone() for k, v in runner.model.state_dict().items()
            if k.startswith(('student.', 'synthesizer.', 'primer.', 'contrast.'))
            and torch.is_tensor(v) and v.is_floating_point()}


@pytest.mark.skipif(amp_device_available(), reason='this machine can build AmpOptimWrapper')
def test_amp_without_an_accelerator_is_refused_naming_the_flag_or_the_key(tmp_path):
    with pytest.raises(ValueError, match='--amp.*Run without --amp'):
        load_config(config_path(*DFAD.split('/')), amp=True)
    # the same wrapper named in a config, where mmengine only asserts
    with pytest.raises(ValueError, match=r"optim_wrapper\.synthesizer\.type: AmpOptimWrapper"
                       r".*type='OptimWrapper'"):
        _runner(DFAD, tmp_path, 'cfg', None,
                **{'optim_wrapper.synthesizer.type': 'AmpOptimWrapper'}).train()


@pytest.mark.parametrize('config, options', [
    # generator and student through the wrapper's scaled backward
    (DFAD, {'train_cfg.max_iters': 2}),
    # REPTILE meta gradient written into .grad, then the meta wrapper's step
    ('fast_dfkd/fast_dfkd_lenet5bn_lenet5half_fmnist.py',
     {'train_cfg.max_iters': 2, 'model.synthesizer.iterations': 2}),
    # the contrastive head: one plain backward shared with the inner optimiser
    ('cmi/cmi_lenet5bn_lenet5half_fmnist.py',
     {'train_cfg.max_iters': 2, 'model.synthesizer.iterations': 2}),
    # primer, contrast head (backward shared with the pixels) and student
    ('dipkd/dipkd_lenet5_lenet5_fmnist.py', {}),
])
def test_loss_scaling_leaves_every_update_unchanged(config, options, tmp_path):
    plain = _trained_weights(_runner(config, tmp_path, 'plain', None, **options))
    runner = _runner(config, tmp_path, 'scaled', dict(type='CPUAmpOptimWrapper'), **options)
    scaled = _trained_weights(runner)
    assert all(isinstance(w, CPUAmpOptimWrapper) for w in runner.optim_wrapper.values())
    assert plain.keys() == scaled.keys() and plain
    for key, value in plain.items():
        # Gradients that skipped the scaled backward used to be divided by the scale (or
        # the first step refused to run): every part must learn as without --amp.
        torch.testing.assert_close(scaled[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize('config, options, parts', [
    (DFAD, {'train_cfg.max_iters': 2}, ('student', 'synthesizer.generator')),
    # conditional generator, SupCon on both models' features, fresh and pooled images mixed
    ('cpsc_dfkd/cpsc_dfkd_replay_lenet5bn_lenet5half_fmnist.py', {'train_cfg.max_iters': 2},
     ('student', 'synthesizer.generator')),
    ('dipkd/dipkd_lenet5_lenet5_fmnist.py', {}, ('student', 'primer')),
])
def test_autocast_runs_the_networks_in_low_precision(config, options, parts, tmp_path):
    runner = _runner(config, tmp_path, 'amp', dict(type='CPUAmpOptimWrapper', dtype='bfloat16'),
                     **options)
    model = runner.model
    seen: dict[str, set] = {part: set() for part in parts}
    for part in parts:
        for layer in model.get_submodule(part).modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)):
                layer.register_forward_hook(
                    lambda m, i, o, part=part: seen[part].add(o.dtype))
    before = {k: v.clone() for k, v in model.student.state_dict().items()}
    runner.train()
    for part in parts:
        assert torch.bfloat16 in seen[part], (part, seen[part])
    after = model.student.state_dict()
    assert all(v.dtype == before[k].dtype for k, v in after.items())  # weights stay float32
    changed = [k for k, v in after.items() if v.is_floating_point()
               and not torch.equal(v, before[k])]
    assert changed
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
