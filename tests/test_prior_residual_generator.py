"""PriorResidualGenerator: image priors + a learned residual, for generator-based methods."""
import pytest
import torch

from mmdfkd.models.synthesizers import sample_latent
from mmdfkd.registry import MODELS

PRIOR = dict(type='ImagePriorGenerator', image_shape=(1, 16, 16), mean=[72.94], std=[90.0],
             background_prob=1.0, zoom_range=(0.6, 1.0))


def _generator(num_classes=None, residual_scale=0.3, img_size=16):
    return MODELS.build(dict(
        type='PriorResidualGenerator', residual_scale=residual_scale, prior=PRIOR,
        generator=dict(type='DCGANGenerator', latent_dim=8, img_size=img_size, channels=1,
                       ngf=4, num_classes=num_classes)))


def _randomise_class_affines(gen):
    """Class-conditional BNs start as the identity for every class; give each class its own
    scale and shift so that conditioning shows in the output."""
    with torch.no_grad():
        for m in gen.modules():
            if hasattr(m, 'gamma') and isinstance(m.gamma, torch.nn.Embedding):
                m.gamma.weight.uniform_(0.5, 2.0)
                m.beta.weight.normal_()


def test_latent_carries_the_prior_and_output_is_prior_plus_scaled_residual():
    gen = _generator(residual_scale=0.3).eval()
    assert gen.latent_dim == 16 * 16 + 8
    z = sample_latent(gen, 6)
    assert z.shape == (6, gen.latent_dim)
    priors = z[:, :256].view(6, 1, 16, 16)
    # the prior part is a real image prior in the teacher's normalised space:
    # inside the [pixel 0, pixel 255] range and with a dark (pixel ~0-25) border
    lo, hi = gen.prior.pixel_range
    assert priors.min() >= lo.min() - 1e-3 and priors.max() <= hi.max() + 1e-3
    assert priors[..., 0, :].mean() < (25 - 72.94) / 90.0
    out = gen(z)
    residual = gen.inner(z[:, 256:])
    torch.testing.assert_close(out, priors + 0.3 * residual)
    # scale 0: exactly the priors; the residual really changes the image otherwise
    gen.residual_scale = 0.0
    torch.testing.assert_close(gen(z), priors)
    assert (out - priors).abs().mean() > 1e-2


def test_fresh_priors_per_draw_and_gradients_reach_the_prior_pixels():
    gen = _generator()
    a, b = sample_latent(gen, 4), sample_latent(gen, 4)
    assert not torch.equal(a[:, :256], b[:, :256])
    z = a.clone().requires_grad_(True)
    gen(z).pow(2).sum().backward()
    # Fast-DFKD's inner loop optimises z: the priors' pixels and the noise both move
    assert z.grad[:, :256].abs().sum() > 0 and z.grad[:, 256:].abs().sum() > 0
    assert all(p.grad is not None for p in gen.inner.parameters() if p.requires_grad)


def test_conditional_inner_generator_gets_the_labels():
    gen = _generator(num_classes=3)
    assert gen.conditional and gen.num_classes == 3
    _randomise_class_affines(gen)
    z = sample_latent(gen, 16)
    a = gen(z, torch.zeros(16, dtype=torch.long))
    b = gen(z, torch.full((16, ), 2))
    assert (a - b).abs().mean() > 1e-3
    with pytest.raises(ValueError, match='labels'):
        gen(z)


def test_bad_configs_name_the_key():
    with pytest.raises(ValueError, match='prior.image_shape'):
        _generator(img_size=32)
    with pytest.raises(ValueError, match='residual_scale'):
        _generator(residual_scale=-1.0)
    gen = _generator()
    with pytest.raises(ValueError, match='sample_latent'):
        gen(torch.randn(2, 8))


def test_plain_generators_keep_gaussian_codes():
    dcgan = MODELS.build(dict(type='DCGANGenerator', latent_dim=8, img_size=16, channels=1,
                              ngf=4))
    z = sample_latent(dcgan, 512)
    assert z.shape == (512, 8) and abs(z.mean().item()) < 0.1 and abs(z.std().item() - 1) < 0.1


def _editor_generator(num_classes=3, edit_passes=1):
    return MODELS.build(dict(
        type='PriorResidualGenerator', residual_scale=0.3, prior=PRIOR, edit_passes=edit_passes,
        generator=dict(type='ConditionalImageEditor', latent_dim=8, img_size=16, channels=1,
                       ngf=4, num_classes=num_classes)))


def test_image_editor_residual_depends_on_the_prior_it_edits():
    gen = _editor_generator().eval()
    _randomise_class_affines(gen)
    z = sample_latent(gen, 8)
    labels = torch.arange(8) % 3
    priors = z[:, :256].view(8, 1, 16, 16)
    out = gen(z, labels)
    residual = gen.inner(z[:, 256:], labels, image=priors)
    torch.testing.assert_close(out, priors + 0.3 * residual)
    # same noise and labels, other priors: the residual changes (a DCGANGenerator inside
    # would give the same residual whatever the prior)
    other = sample_latent(gen, 8)
    other[:, 256:] = z[:, 256:]
    other_residual = (gen(other, labels) - other[:, :256].view(8, 1, 16, 16)) / 0.3
    assert (other_residual - residual).abs().mean() > 1e-2
    # same prior and noise, other labels: the residual changes too
    assert (gen(z, (labels + 1) % 3) - out).abs().mean() > 1e-3
    # gradients reach the editor's weights and the prior's pixels
    gen.train()
    zg = z.clone().requires_grad_(True)
    gen(zg, labels).pow(2).sum().backward()
    assert zg.grad[:, :256].abs().sum() > 0
    assert all(p.grad is not None for p in gen.inner.parameters())


def test_image_editor_errors_name_the_fix():
    editor = MODELS.build(dict(type='ConditionalImageEditor', latent_dim=8, img_size=16,
                               channels=1, ngf=4, num_classes=3))
    z = torch.randn(2, 8)
    with pytest.raises(ValueError, match='image='):
        editor(z, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match=r'\(1, 16, 16\)'):
        editor(z, torch.zeros(2, dtype=torch.long), image=torch.randn(2, 1, 8, 8))
    with pytest.raises(ValueError, match='labels'):
        editor(z, image=torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match='even'):
        MODELS.build(dict(type='ConditionalImageEditor', img_size=15, channels=1))


def test_image_editor_context_branch_lets_far_pixels_shape_the_edit():
    def editor(context_branch):
        torch.manual_seed(0)
        return MODELS.build(dict(type='ConditionalImageEditor', latent_dim=8, img_size=32,
                                 channels=1, ngf=4, num_classes=3,
                                 context_branch=context_branch)).eval()

    local, wide = editor(False), editor(True)
    # the branch is built last, so the rest of the editor starts from the same weights
    wide_state = wide.state_dict()
    assert all(torch.equal(v, wide_state[k]) for k, v in local.state_dict().items())
    assert any(k.startswith('context.') for k in wide_state)
    _randomise_class_affines(wide)
    z, labels = torch.randn(2, 8), torch.tensor([0, 2])
    prior = torch.randn(2, 1, 32, 32)
    moved = prior.clone()
    moved[:, :, :6, :6] += 3.0  # top-left corner only
    for gen, far_changes in ((local, False), (wide, True)):
        change = (gen(z, labels, image=moved) - gen(z, labels, image=prior)).abs()
        # the editor's receptive field is 14 pixels without the branch and 28 with it: the
        # centre only sees the top-left corner through the branch
        centre = change[:, :, 12:18, 12:18].max()
        assert (centre > 1e-4) == far_changes, (gen.context is not None, centre)
    with pytest.raises(ValueError, match='divisible by 4'):
        MODELS.build(dict(type='ConditionalImageEditor', img_size=18, channels=1,
                          context_branch=True))


def test_edit_passes_apply_the_editor_to_its_own_output():
    gen = _editor_generator(edit_passes=2).eval()
    _randomise_class_affines(gen)
    z = sample_latent(gen, 4)
    labels = torch.tensor([0, 1, 2, 0])
    priors, noise = z[:, :256].view(4, 1, 16, 16), z[:, 256:]
    once = priors + 0.3 * gen.inner(noise, labels, image=priors)
    twice = once + 0.3 * gen.inner(noise, labels, image=once)
    torch.testing.assert_close(gen(z, labels), twice)
    assert (twice - once).abs().mean() > 1e-3
    # several passes only mean something for an editor; a DCGAN's residual ignores the image
    with pytest.raises(ValueError, match='edit_passes'):
        MODELS.build(dict(type='PriorResidualGenerator', prior=PRIOR, edit_passes=2,
                          generator=dict(type='DCGANGenerator', latent_dim=8, img_size=16,
                                         channels=1, ngf=4)))
    with pytest.raises(ValueError, match='edit_passes'):
        _editor_generator(edit_passes=0)
