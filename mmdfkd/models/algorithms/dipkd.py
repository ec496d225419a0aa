"""DIP-KD: distil a teacher that answers only with top-1 labels (Wang et al.)."""
import torch
import torch.nn.functional as F
from mmengine import dist
from mmengine.logging import MessageHub
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapperDict
from torch import nn

from mmdfkd.models.algorithms.student_eval import student_forward_for_eval
from mmdfkd.models.teachers import BaseTeacher, require_access
from mmdfkd.models.utils import (BatchAugment, check_batch_sizes, check_models_fit,
                                 classifier_logits_and_features, frozen_parameters)
from mmdfkd.registry import MODELS
from mmdfkd.utils import preserved_random_state

PHASES = ('synthesis', 'primer', 'contrast', 'distill')


@MODELS.register_module()
class DIPKD(BaseModel):
    """Diverse image priors KD, in three config-selectable phases run one after another by
    the ``DataFreeTrainLoop`` (``phase_iters`` gives each phase's iterations):

    1. ``synthesis``: the synthesizer (``ImagePriorSynthesizer``) makes priors and buys their
       top-1 labels from the teacher, one batch per iteration, into the data pool;
    2. ``primer``: a primer student ``S0`` learns CE on the teacher's labels; then
       ``contrast``: an instance discriminator and the pooled images are optimised with
       InfoNCE on ``S0``'s features (the refined images keep their labels);
    3. ``distill``: the student learns ``ce_weight * CE(S(x), T_top1(x)) +
       primer_weight * L1(S(x), S0(x))`` on pooled images, and optionally the L1 term alone on
       ``unlabelled_batch_size`` unlabelled images per step (free: no teacher query), fresh
       priors or overlays of pooled pairs (``unlabelled_source``).

    A phase with 0 iterations is skipped (ablations); without the primer phase the L1 term
    must be off. Later phases start only on a full pool: an iteration past the synthesis
    phase with a pool short of ``num_images`` (a run stopped by its query budget, resumed
    with a larger one) synthesises instead. The teacher is a wrapper (``HardLabelTeacher`` is
    enough); its query count, cache hits and budget are logged and checkpointed.

    Args:
        teacher (dict): Teacher wrapper config (``HardLabelTeacher``, ``SoftLabelTeacher`` or
            ``WhiteBoxTeacher``).
        student (dict): mmpretrain classifier config of the student.
        synthesizer (dict): ``ImagePriorSynthesizer`` config.
        phase_iters (dict): Iterations of ``synthesis``, ``primer``, ``contrast``,
            ``distill``; ``train_cfg.max_iters`` should be their sum.
        primer (dict, optional): Primer classifier config (default: same as the student);
            a ``ClassifierEnsemble`` trains its members side by side and gives the student
            their mean logits.
        contrast (dict, optional): ``InstanceContrastRefiner`` config (needed when
            ``phase_iters.contrast > 0``).
        batch_size (int): Pooled images per primer/student/contrast step.
        ce_weight (float): Weight of the CE on teacher labels in the distill phase.
        primer_weight (float): Weight of the L1 to the primer's logits.
        unlabelled_batch_size (int): Unlabelled images per distill step for the L1 term only.
        unlabelled_source (str): Where they come from: ``'priors'`` (fresh priors from the
            synthesizer) or ``'overlays'`` (pixel-wise maxima of two pooled images, see
            ``ImagePriorSynthesizer.sample_overlays``; no synthesis cost). With a primer
            wider than the student, overlays let the student learn more of the primer than
            the labelled images show (docs/benchmarks.md).
        augment (list[dict], optional): torchvision ``transforms.v2`` applied per image to
            pooled batches of the primer and student (label-preserving ones only).
        augment_groups (int, optional): Groups of a batch that share one draw of
            ``augment``'s random parameters (``None``: one draw per image).
        eval_teacher_agreement (bool): At validation and testing, also buy the teacher's
            top-1 class of every image (queries like any other: counted, cached, within the
            budget), for the ``TeacherAgreement`` metric: validation on unlabelled images.
        data_preprocessor (dict, optional): Normalises real validation/test images.
    """

    def __init__(self, teacher: dict, student: dict, synthesizer: dict, phase_iters: dict,
                 primer: dict | None = None, contrast: dict | None = None,
                 batch_size: int = 100, ce_weight: float = 1.0, primer_weight: float = 1.0,
                 unlabelled_batch_size: int = 0, unlabelled_source: str = 'priors',
                 augment: list[dict] | None = None,
                 augment_groups: int | None = None, eval_teacher_agreement: bool = False,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.eval_teacher_agreement = eval_teacher_agreement
        if dist.get_world_size() > 1:
            # Every process would buy its own labelled set, count and cap its own queries
            # and train on its own set alone: the run would spend world_size x the budget.
            raise ValueError(
                f'DIP-KD runs in one process (python tools/train.py CONFIG); this run has '
                f'{dist.get_world_size()}. Its labelled set, query count and '
                'model.teacher.query_budget are one process\'s, so each process would buy '
                'its own set of model.synthesizer.num_images queries.')
        self.synthesizer = MODELS.build(synthesizer)
        # Under preserved streams, as in DataFreeDistiller: a local teacher and the same
        # teacher served over HTTP leave the run the same random draws.
        with preserved_random_state():
            teacher = MODELS.build(teacher)
        if not isinstance(teacher, BaseTeacher):
            raise TypeError('DIPKD: model.teacher must be a teacher wrapper, e.g. '
                            "dict(type='HardLabelTeacher', num_classes=10, model=..., "
                            f'checkpoint=...); got {type(teacher).__name__}.')
        require_access(teacher, self.synthesizer.required_access, self.synthesizer.method_name)
        self.teacher = teacher
        self.student = MODELS.build(student)
        unknown = set(phase_iters) - set(PHASES)
        if unknown or any(int(v) < 0 for v in phase_iters.values()):
            raise ValueError(f'model.phase_iters takes non-negative iterations for {PHASES}; '
                             f'got {dict(phase_iters)}')
        self.phase_iters = {p: int(phase_iters.get(p, 0)) for p in PHASES}
        if self.phase_iters['synthesis'] == 0:
            raise ValueError('model.phase_iters.synthesis must be > 0: every later phase '
                             'trains on the labelled priors')
        if primer_weight and not self.phase_iters['primer']:
            raise ValueError('model.primer_weight needs a primer: set phase_iters.primer > 0, '
                             'or primer_weight=0 to distil from the labels alone')
        if self.phase_iters['contrast'] and not self.phase_iters['primer']:
            raise ValueError('the contrast phase encodes images with the primer: set '
                             'phase_iters.primer > 0, or phase_iters.contrast=0')
        self.primer = MODELS.build(primer or student) if self.phase_iters['primer'] else None
        # The teacher may be a counted (or remote) black box, so only the student and the
        # primer are run; the teacher's class count is the one its wrapper declares.
        self.num_classes: int = teacher.num_classes
        check_models_fit(
            self.synthesizer.image_shape,
            {'model.student': self.student,
             **({'model.primer': self.primer} if self.primer is not None else {})},
            {'model.teacher.num_classes': teacher.num_classes,
             self.synthesizer.num_classes_key: getattr(self.synthesizer, 'num_classes', None)},
            shape_key=self.synthesizer.image_shape_key)
        self.contrast = None
        if self.phase_iters['contrast']:
            if contrast is None:
                raise ValueError('model.phase_iters.contrast > 0 needs model.contrast='
                                 "dict(type='InstanceContrastRefiner', ...)")
            self.contrast = MODELS.build(contrast)
            with torch.no_grad():
                c, h, w = self.synthesizer.image_shape
                _, feats = classifier_logits_and_features(self.primer, torch.zeros(2, c, h, w))
            self.contrast.build(feats.size(1))
        check_batch_sizes({'model.batch_size': batch_size})
        check_batch_sizes({'model.unlabelled_batch_size': unlabelled_batch_size}, minimum=0)
        self.batch_size = batch_size
        self.ce_weight, self.primer_weight = ce_weight, primer_weight
        if unlabelled_source not in ('priors', 'overlays'):
            raise ValueError("model.unlabelled_source must be 'priors' or 'overlays', got "
                             f'{unlabelled_source!r}')
        if unlabelled_batch_size and not primer_weight:
            raise ValueError('model.unlabelled_batch_size > 0 feeds only the L1 term to the '
                             'primer: set primer_weight > 0, or unlabelled_batch_size=0')
        if unlabelled_source == 'overlays' and not hasattr(self.synthesizer, 'sample_overlays'):
            raise ValueError("model.unlabelled_source='overlays' needs a synthesizer with "
                             'sample_overlays() (ImagePriorSynthesizer); got '
                             f'{type(self.synthesizer).__name__}')
        self.unlabelled_batch_size = unlabelled_batch_size
        self.unlabelled_source = unlabelled_source
        self.augment = BatchAugment(augment, groups=augment_groups,
                                     key='model.augment') if augment else None
        if self.augment is not None:
            self.augment.check_keeps_shape(self.synthesizer.image_shape, 'model.augment',
                                           self.synthesizer.image_shape_key)
        self._schedule_checked = False

    # ------------------------------------------------------------------ plumbing
    def set_work_dir(self, work_dir: str) -> None:
        """Tell the synthesizer where the run writes (called by ``DataFreeTrainLoop``)."""
        self.synthesizer.set_work_dir(work_dir)

    def phase_at(self, iteration: int) -> tuple[str, int]:
        """The phase running at ``iteration`` and the iteration within it."""
        start = 0
        for phase in PHASES:
            if iteration < start + self.phase_iters[phase]:
                return phase, iteration - start
            start += self.phase_iters[phase]
        raise RuntimeError(f'iteration {iteration} is past the last phase (sum of '
                           f'model.phase_iters = {start}); set train_cfg.max_iters={start}')

    @property
    def total_iters(self) -> int:
        """Iterations of all phases together (``sum(phase_iters)``)."""
        return sum(self.phase_iters.values())

    def _check_schedule(self) -> None:
        """Fail at the first iteration, not at the end, when the loop runs longer than the
        phases (a shorter loop is allowed: time/query budgets end runs early anyway)."""
        max_iters = MessageHub.get_current_instance().get_info('max_iters')
        if max_iters is not None and max_iters > self.total_iters:
            raise ValueError(f'train_cfg.max_iters={max_iters} is more than the sum of '
                             f'model.phase_iters ({self.phase_iters} = {self.total_iters}); '
                             f'set train_cfg.max_iters={self.total_iters}')
        self._schedule_checked = True

    # ------------------------------------------------------------------ training
    def train_step(self, data: dict | None,
                   optim_wrapper: OptimWrapperDict) -> dict[str, torch.Tensor]:
        """One iteration of the phase at ``data['iteration']``: buy labels for the next batch of
        priors (also later, until the pool is full), or one primer, contrast or student step.
        """
        iteration = data.get('iteration', 0) if isinstance(data, dict) else 0
        if not self._schedule_checked:
            self._check_schedule()
        phase, _ = self.phase_at(iteration)
        if phase == 'synthesis' or not self.synthesizer.done:
            # Later phases need the full pool; after a query-budget stop and a resume with a
            # larger budget, the pool is topped up first.
            log_vars = self.synthesizer.synthesize(self)
        elif phase == 'primer':
            log_vars = self.primer_step(optim_wrapper['primer'])
        elif phase == 'contrast':
            log_vars = self.contrast_step(optim_wrapper['contrast'])
        else:
            log_vars = self.student_step(optim_wrapper['student'])
        log_vars = {k: v.detach() if torch.is_tensor(v) else torch.tensor(float(v))
                    for k, v in log_vars.items()}
        log_vars['phase'] = torch.tensor(float(PHASES.index(phase)))
        log_vars['teacher_queries'] = self.teacher.queries.detach().float()
        log_vars['teacher_cache_hits'] = self.teacher.cache_hits.detach().float()
        return log_vars

    def _labelled_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.synthesizer.sample_labelled(self.batch_size)
        if self.augment is not None:
            images = self.augment(images)
        return images, labels

    def primer_step(self, optim_wrapper: OptimWrapperDict) -> dict[str, torch.Tensor]:
        """One CE step of the primer student on teacher-labelled priors. The members of a
        ``ClassifierEnsemble`` primer each learn from their own batch, like separately
        trained primers."""
        if hasattr(self.primer, 'member_logits'):
            losses = []
            for member in self.primer.members:
                images, labels = self._labelled_batch()
                with optim_wrapper.optim_context(self.primer):  # autocast under --amp
                    logits = member(images, mode='tensor').float()
                losses.append(F.cross_entropy(logits, labels))
            optim_wrapper.update_params(sum(losses))
            return {'primer.loss_ce': torch.stack(losses).detach().mean()}
        images, labels = self._labelled_batch()
        with optim_wrapper.optim_context(self.primer):
            logits = self.primer(images, mode='tensor').float()
        loss = F.cross_entropy(logits, labels)
        optim_wrapper.update_params(loss)
        return {'primer.loss_ce': loss}

    def contrast_step(self, optim_wrapper: OptimWrapperDict) -> dict[str, torch.Tensor]:
        """Refine one pooled batch with InfoNCE on the primer's features; write it back."""
        pool = self.synthesizer.pool
        records = pool.gather(pool.sample_index(self.batch_size),
                              device=self.synthesizer._device_probe.device)

        def encode(x: torch.Tensor) -> torch.Tensor:
            return classifier_logits_and_features(self.primer, x)[1]

        self.primer.eval()
        with frozen_parameters(self.primer):
            refined, loss = self.contrast.refine(encode, records['images'], optim_wrapper,
                                                 self.synthesizer.pixel_range)
        pool.update_images(records['index'], refined)
        return {'contrast.loss_nce': torch.tensor(loss)}

    def student_step(self, optim_wrapper: OptimWrapperDict) -> dict[str, torch.Tensor]:
        """One distillation step: CE on teacher labels + L1 to the primer's logits."""
        images, labels = self._labelled_batch()
        losses = {}

        def logits_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
            # The forward under the student wrapper's autocast (--amp), the loss in float32.
            with optim_wrapper.optim_context(self.student):
                return model(x, mode='tensor').float()

        logits = logits_of(self.student, images)
        if self.ce_weight:
            losses['loss_ce'] = self.ce_weight * F.cross_entropy(logits, labels)
        if self.primer_weight:
            self.primer.eval()
            with torch.no_grad():
                primer_logits = logits_of(self.primer, images)
            losses['loss_l1'] = self.primer_weight * F.l1_loss(logits, primer_logits)
            if self.unlabelled_batch_size:
                fresh = (self.synthesizer.sample_overlays(self.unlabelled_batch_size)
                         if self.unlabelled_source == 'overlays'
                         else self.synthesizer.generate(self.unlabelled_batch_size))
                with torch.no_grad():
                    fresh_primer = logits_of(self.primer, fresh)
                losses['loss_l1_fresh'] = self.primer_weight * F.l1_loss(
                    logits_of(self.student, fresh), fresh_primer)
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return {f'student.{k}': v for k, v in log_vars.items() if k != 'loss'}

    # ------------------------------------------------------------------ evaluation
    def forward(self, inputs: torch.Tensor, data_samples: list | None = None,
                mode: str = 'tensor') -> torch.Tensor | list:
        """``'predict'``/``'tensor'`` run the student (``'predict'`` also the teacher with
        ``eval_teacher_agreement``)."""
        if mode == 'loss':
            raise RuntimeError('DIPKD trains through train_step (the DataFreeTrainLoop calls it)')
        return student_forward_for_eval(self, inputs, data_samples, mode)

    def teacher_labels(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's top-1 labels (counted, cached)."""
        return self.teacher.query_labels(images)

    def init_weights(self) -> None:
        """Initialise every part but the teacher, which answers as it is."""
        for name, child in self.named_children():
            if name != 'teacher' and hasattr(child, 'init_weights'):
                child.init_weights()
