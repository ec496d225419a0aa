import copy

import pytest
import torch
from mmengine.config import Config

from mmdfkd.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS

from .conftest import config_path


def build(config: str, teacher_ckpt: str, **model_overrides):
    cfg = Config.fromfile(config_path(*config.split('/')))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg['teacher_ckpt'] = teacher_ckpt
    model_cfg.update(model_overrides)
    model = MODELS.build(model_cfg)
    model.init_weights()
    optim = OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type=cfg.optim_wrapper.constructor,
        optim_wrapper_cfg={k: v for k, v in cfg.optim_wrapper.items() if k != 'constructor'}))(
            model)
    return model, optim


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_teacher_stays_frozen_and_in_eval(teacher_ckpt):
    model, optim = build('dfad/dfad_lenet5bn_lenet5half_fmnist.py', teacher_ckpt)
    loaded = torch.load(teacher_ckpt, weights_only=False)['state_dict']
    for k, v in model.teacher.state_dict().items():
        torch.testing.assert_close(v, loaded[k])  # the checkpoint really was loaded
    before = state(model.teacher)
    model.train()
    assert not model.teacher.training and model.student.training
    for _ in range(2):
        model.train_step({}, optim)
    assert not model.teacher.training
    for k, v in model.teacher.state_dict().items():
        torch.testing.assert_close(v, before[k], msg=f'teacher {k} changed')
    assert all(not p.requires_grad for p in model.teacher.parameters())


@pytest.mark.parametrize('config', ['dfad/dfad_lenet5bn_lenet5half_fmnist.py',
                                    'zskt/zskt_lenet5bn_lenet5half_fmnist.py',
                                    'dafl/dafl_lenet5bn_lenet5half_fmnist.py'])
def test_synthesizer_step_leaves_no_student_gradient(teacher_ckpt, config):
    model, optim = build(config, teacher_ckpt)
    model.train()
    student_before = state(model.student)
    gen_before = state(model.synthesizer.generator)
    losses = model.synthesizer_step(optim['synthesizer'])
    assert losses and all(torch.isfinite(v) for v in losses.values())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.student.parameters())
    assert all(p.requires_grad for p in model.student.parameters())  # unfrozen afterwards
    for k, v in model.student.state_dict().items():
        if 'running' not in k and 'num_batches' not in k:
            torch.testing.assert_close(v, student_before[k])
    changed = [k for k, v in model.synthesizer.generator.state_dict().items()
               if v.dtype.is_floating_point and not torch.equal(v, gen_before[k])]
    assert any('weight' in k for k in changed), 'the generator was not updated'


def test_student_step_updates_student_only_and_counts_queries(teacher_ckpt):
    model, optim = build('dfad/dfad_lenet5bn_lenet5half_fmnist.py', teacher_ckpt,
                         student_batch_size=32)
    model.train()
    gen_before = state(model.synthesizer.generator)
    student_before = state(model.student)
    assert int(model.teacher_queries) == 0
    model.student_step(optim['student'])
    assert int(model.teacher_queries) == 32
    assert any(not torch.equal(v, student_before[k])
               for k, v in model.student.state_dict().items() if 'weight' in k)
    for k, v in model.synthesizer.generator.state_dict().items():
        if 'running' not in k and 'num_batches' not in k:
            torch.testing.assert_close(v, gen_before[k])
    model.synthesizer_step(optim['synthesizer'])
    assert int(model.teacher_queries) == 32 + model.synthesizer.batch_size
    assert 'teacher_queries' in model.state_dict()


@pytest.mark.parametrize('losses', [
    dict(type='DecoupledKDLoss', tau=1.0, beta=2.0),
    [dict(type='KLDivergenceLoss'), dict(type='StandardizedKLLoss', loss_weight=0.5)]])
def test_logit_losses_are_config_selectable(teacher_ckpt, losses):
    model, optim = build('dfad/dfad_lenet5bn_lenet5half_fmnist.py', teacher_ckpt,
                         student_batch_size=16, distill_loss=losses)
    model.train()
    student_before = state(model.student)
    logs = model.student_step(optim['student'])
    names = ['loss_kd'] if isinstance(losses, dict) else ['loss_kd0', 'loss_kd1']
    for name in names:
        value = torch.as_tensor(logs[name]).detach()
        assert torch.isfinite(value) and float(value) > 0
    assert any(not torch.equal(v, student_before[k])
               for k, v in model.student.state_dict().items() if 'weight' in k)


def test_train_step_logs(teacher_ckpt):
    model, optim = build('zskt/zskt_lenet5bn_lenet5half_fmnist.py', teacher_ckpt,
                         student_steps=2)
    model.train()
    logs = model.train_step({}, optim)
    assert {'synth.loss_adv', 'student.loss_kd', 'student.loss_feat', 'synth_img_per_s',
            'teacher_queries'} <= set(logs)
    assert logs['synth_img_per_s'] > 0
    assert logs['teacher_queries'] == 128 * 3


def test_clear_errors(teacher_ckpt, tmp_path):
    with pytest.raises(FileNotFoundError, match='tools/train.py'):
        build('dfad/dfad_lenet5bn_lenet5half_fmnist.py', str(tmp_path / 'missing.pth'))
    with pytest.raises(ValueError, match='feature_layers'):
        build('dfad/dfad_lenet5bn_lenet5half_fmnist.py', teacher_ckpt,
              feature_loss=dict(type='AttentionTransferLoss'))
    with pytest.raises(ValueError, match=r"model\.feature_layers\.student: modules "
                                         r"\['backbone\.nope'\] not found in the LeNet model; its "
                                         r"modules include \['backbone\.conv1', 'backbone\.conv2', "
                                         r"'backbone\.fc', 'backbone\.conv1\.0'"):
        build('zskt/zskt_lenet5bn_lenet5half_fmnist.py', teacher_ckpt,
              feature_layers=dict(student=['backbone.nope'], teacher=['backbone.conv1']))
    model, _ = build('dfad/dfad_lenet5bn_lenet5half_fmnist.py', teacher_ckpt)
    with pytest.raises(TypeError, match='DataFreeOptimWrapperConstructor'):
        model.train_step({}, None)
    with pytest.raises(ValueError, match='at least one objective'):
        MODELS.build(dict(type='GeneratorSynthesizer',
                          generator=dict(type='DCGANGenerator', channels=1)))
    with pytest.raises(ValueError, match='has no child'):
        OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
            type='DataFreeOptimWrapperConstructor',
            optim_wrapper_cfg=dict(generator=dict(optimizer=dict(type='SGD', lr=0.1)))))(model)


def test_image_shape_and_class_count_are_checked_at_build(teacher_ckpt):
    """A synthesizer shape or class count that does not fit the models fails at build time
    with the key to change, not with a convolution error at the first synthesis step; the
    check leaves both models' modes alone and costs no teacher query."""
    config = 'deepinversion/deepinversion_lenet5bn_lenet5half_fmnist.py'
    synth = Config.fromfile(config_path(*config.split('/'))).model.synthesizer
    with pytest.raises(ValueError, match=r'model.synthesizer.image_shape \(3, 32, 32\) does '
                                         r'not fit model.teacher: .*1 channels'):
        build(config, teacher_ckpt, synthesizer=dict(synth, image_shape=(3, 32, 32)))
    with pytest.raises(ValueError, match='synthesizer.num_classes is 100 but model.teacher has 10'):
        build(config, teacher_ckpt, synthesizer=dict(synth, num_classes=100))
    student = Config.fromfile(config_path(*config.split('/'))).model.student
    with pytest.raises(ValueError,
                       match="model.student 7: set model.student's head num_classes to 10"):
        build(config, teacher_ckpt, student=dict(student, head=dict(student.head, num_classes=7)))
    for key, value in (('synthesizer', dict(synth, batch_size=0)), ('student_batch_size', 0)):
        with pytest.raises(ValueError, match=f'model.{key}.* must be an int >= 1'):
            build(config, teacher_ckpt, **{key: value})
    model, _ = build(config, teacher_ckpt)
    assert model.student.training and not model.teacher.training
    assert int(model.teacher_queries) == 0

    # Generator methods are checked too, naming their own keys: a class count that would
    # silently leave classes out of the balanced targets, a generator of the wrong channels.
    fast = 'fast_dfkd/fast_dfkd_lenet5bn_lenet5half_fmnist.py'
    synth = Config.fromfile(config_path(*fast.split('/'))).model.synthesizer
    with pytest.raises(ValueError, match='model.synthesizer.num_classes is 7 but model.teacher '
                                         'has 10 classes'):
        build(fast, teacher_ckpt, synthesizer=dict(synth, num_classes=7))
    with pytest.raises(ValueError, match=r"model.synthesizer.generator's \(channels, img_size, "
                                         r"img_size\) \(3, 32, 32\) does not fit model.teacher"):
        build(fast, teacher_ckpt,
              synthesizer=dict(synth, generator=dict(synth.generator, channels=3)))
    cpsc = 'cpsc_dfkd/cpsc_dfkd_lenet5bn_lenet5half_fmnist.py'
    synth = Config.fromfile(config_path(*cpsc.split('/'))).model.synthesizer
    with pytest.raises(ValueError, match='model.synthesizer.generator.num_classes is 7'):
        build(cpsc, teacher_ckpt,
              synthesizer=dict(synth, generator=dict(synth.generator, num_classes=7)))


def _build_with_wrappers(config: str, teacher_ckpt: str, wrappers: dict, **model_overrides):
    cfg = Config.fromfile(config_path(*config.split('/')))
    model, _ = build(config, teacher_ckpt, **model_overrides)
    entries = {k: dict(v, **wrappers.get(k, {})) for k, v in cfg.optim_wrapper.items()
               if k != 'constructor'}
    return model, OPTIM_WRAPPER_CONSTRUCTORS.build(dict(
        type=cfg.optim_wrapper.constructor, optim_wrapper_cfg=entries))(model)


def test_gradient_accumulation_steps_the_student_once_per_group(teacher_ckpt):
    """optim_wrapper.student.accumulative_counts=2 makes two student backwards one update;
    the synthesizer (stepped outside update_params) and counts that would split a group
    across a checkpoint are refused with the key to change."""
    config = 'dfad/dfad_lenet5bn_lenet5half_fmnist.py'
    model, optim = _build_with_wrappers(config, teacher_ckpt,
                                        {'student': dict(accumulative_counts=2)},
                                        student_steps=4, student_batch_size=8)
    model.train()
    weights = state(model.student)
    model.student_step(optim['student'])
    # half a group: gradients are kept, the weights have not moved
    assert any(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.student.parameters())
    for k, v in state(model.student).items():
        if 'running' not in k and 'num_batches' not in k:
            torch.testing.assert_close(v, weights[k], rtol=0, atol=0, msg=k)
    model.student_step(optim['student'])
    assert any(not torch.equal(v, weights[k]) for k, v in state(model.student).items()
               if 'running' not in k and 'num_batches' not in k)
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.student.parameters())
    steps = []
    optim['student'].optimizer.step = (lambda step: lambda *a, **k: (steps.append(1),
                                                                     step(*a, **k)))(
        optim['student'].optimizer.step)
    model.train_step({}, optim)  # four student backwards: two updates
    assert len(steps) == 2

    with pytest.raises(ValueError, match=r'optim_wrapper\.synthesizer\.accumulative_counts=2: '
                                         r'.*Remove the key.*optim_wrapper\.student'):
        _build_with_wrappers(config, teacher_ckpt, {'synthesizer': dict(accumulative_counts=2)})
    with pytest.raises(ValueError, match=r'optim_wrapper\.student\.accumulative_counts=3 must '
                                         r'divide the 4 student updates per iteration'):
        _build_with_wrappers(config, teacher_ckpt, {'student': dict(accumulative_counts=3)},
                             student_steps=4)
