"""The algorithm model that runs a data-free distillation on mmengine's runner."""
import time
from contextlib import nullcontext

import torch
from mmengine import dist
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper, OptimWrapperDict
from torch import nn

from mmdfkd.models.utils import (STUDENT_INIT_MODES, BatchAugment, ModuleOutputRecorder,
                                 PartialMixup, check_batch_sizes, check_models_fit,
                                 classifier_logits_and_features, deepest_output,
                                 evaluation_mode, frozen_parameters,
                                 init_student_from_teacher, output_shapes, stage_names)
from mmdfkd.models.losses.cam import cam_forward
from mmdfkd.models.teachers import BaseTeacher, load_classifier_weights, require_access
from mmdfkd.models.algorithms.student_eval import student_forward_for_eval
from mmdfkd.registry import MODELS
from mmdfkd.utils import preserved_random_state


def unwrap(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or the module itself)."""
    return getattr(module, 'module', module)


@MODELS.register_module()
class DataFreeDistiller(BaseModel):
    """Distil a frozen teacher into a student using only synthetic images.

    Each training iteration runs ``synthesizer_steps`` synthesizer updates (the student's
    parameters frozen, so it picks up no gradient) followed by ``student_steps`` student updates
    on fresh samples labelled by the teacher. Validation and testing evaluate the student.

    Args:
        teacher (dict): mmpretrain ``ImageClassifier`` config of the teacher (weights from
            ``teacher_ckpt``), or a teacher wrapper config; the synthesizers here need
            white-box access, so a ``HardLabelTeacher``/``SoftLabelTeacher`` is refused at
            build time with a message naming the method.
        student (dict): mmpretrain ``ImageClassifier`` config of the student.
        synthesizer (dict): Synthesizer config (see ``mmdfkd.models.synthesizers``).
        teacher_ckpt (str): Path of the trained teacher's checkpoint.
        distill_loss (dict | list[dict]): Student-vs-teacher logit loss(es), e.g.
            ``KLDivergenceLoss``; a list is summed (CPSC-DFKD: KL + ``MSELogitLoss``).
        pseudo_label_loss (dict, optional): Loss of the student's logits against the labels the
            synthesizer generated the images for, e.g. mmpretrain's ``CrossEntropyLoss``
            (needs a synthesizer whose ``sample_labelled`` returns labels).
        cam_loss (dict, optional): ``CAMConsistencyLoss`` between the two models' class
            activation maps (DiffDFKD); needs CNN classifiers with a final conv map and a
            linear head (checked when built).
        feature_loss (dict, optional): Student-vs-teacher feature loss such as
            ``AttentionTransferLoss``; needs ``feature_layers``.
        feature_layers (dict, optional): ``dict(student=[names], teacher=[names])`` of the
            modules whose outputs ``feature_loss`` compares, paired in order.
        synthesizer_steps (int): Synthesizer updates per iteration.
        student_steps (int): Student updates per iteration.
        student_batch_size (int, optional): Images per student update; defaults to the
            synthesizer's ``batch_size``.
        warmup_iters (int): First iterations that only synthesise (no student update), so a
            pool-based method starts the student on a pool rather than on one batch.
        student_augment (list[dict], optional): torchvision ``transforms.v2`` applied per
            image to the synthetic batch before the teacher labels it and the student learns
            it (e.g. flips and shifted crops: cheap extra diversity).
        student_augment_groups (int, optional): Split each batch into this many groups that
            share one draw of ``student_augment``'s random parameters, instead of one draw per
            image (``BatchAugment(groups=...)``; several times faster on CPU).
        student_mixup (dict, optional): ``dict(ratio=0.5, alpha=1.0)``: blend that fraction
            of each student batch with other images of the batch (``PartialMixup``, after
            ``student_augment``); the teacher labels the blends. Not with
            ``pseudo_label_loss`` (a blend has no single sampled label).
        student_init_from_teacher (str, optional): Start the student from the teacher's
            weights instead of random ones, for a student that is the teacher's architecture
            at a smaller width: a channel slice, ``'magnitude'`` (chain networks such as
            LeNet) or ``'first'`` (any topology), or ``'fold'``, every layer's channels
            clustered and merged (chain networks with ReLU; the best start on Fashion-MNIST,
            use a lower student learning rate so training keeps it); see
            :func:`init_student_from_teacher`. Needs a white-box teacher.
        student_init_seed (int): Seed of the fold's k-means (``'fold'`` only). Different
            seeds merge different channels; on the Fashion-MNIST probe the final student
            accuracy spread over about 1.8 points across eight seeds (docs/benchmarks.md).
        eval_teacher_agreement (bool): At validation and testing, also ask the teacher for
            the top-1 class of every image (counted as queries), for the ``TeacherAgreement``
            metric: validation on unlabelled images.
        data_preprocessor (dict, optional): Normalises real validation/test images into the
            teachers' input space (synthetic images are already in it).
    """

    def __init__(self, teacher: dict, student: dict, synthesizer: dict,
                 teacher_ckpt: str | None, distill_loss: dict | list[dict],
                 pseudo_label_loss: dict | None = None, cam_loss: dict | None = None,
                 feature_loss: dict | None = None, feature_layers: dict | None = None,
                 synthesizer_steps: int = 1, student_steps: int = 1,
                 student_batch_size: int | None = None, warmup_iters: int = 0,
                 student_augment: list[dict] | None = None,
                 student_augment_groups: int | None = None,
                 student_mixup: dict | None = None,
                 student_init_from_teacher: str | None = None,
                 student_init_seed: int = 0, eval_teacher_agreement: bool = False,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        # The teacher's random initialisation is overwritten by its checkpoint; built under
        # preserved streams, it leaves the run's draws the same whatever the teacher is
        # (local, remote, callable) and however many draws building it takes.
        with preserved_random_state():
            built = MODELS.build(teacher)
        self.synthesizer = MODELS.build(synthesizer)
        if isinstance(built, BaseTeacher):
            require_access(built, self.synthesizer.required_access,
                           self.synthesizer.method_name)
            if student_init_from_teacher:
                require_access(built, 'white-box', 'model.student_init_from_teacher')
            built = built.model
        else:
            load_classifier_weights(built, teacher_ckpt)
        self.teacher = built
        self.student = MODELS.build(student)
        self.eval_teacher_agreement = eval_teacher_agreement
        image_shape = getattr(self.synthesizer, 'image_shape', None)
        # The class count teacher and student agree on (tools read it, e.g. for folder names).
        self.num_classes: int | None = None
        if image_shape is not None:
            self.num_classes = check_models_fit(
                image_shape, {'model.teacher': self.teacher, 'model.student': self.student},
                {self.synthesizer.num_classes_key: getattr(self.synthesizer, 'num_classes', None)},
                shape_key=self.synthesizer.image_shape_key)
        self.synthesizer.bind(self.teacher)
        self.synthesizer.bind_student(self.student, self.teacher)
        self.distill_loss = (nn.ModuleList([MODELS.build(c) for c in distill_loss])
                             if isinstance(distill_loss, (list, tuple)) else
                             MODELS.build(distill_loss))
        self.pseudo_label_loss = MODELS.build(pseudo_label_loss) if pseudo_label_loss else None
        self.cam_loss = MODELS.build(cam_loss) if cam_loss else None
        if self.cam_loss is not None:
            probe = torch.zeros(1, *getattr(self.synthesizer, 'image_shape', (3, 32, 32)))
            with torch.no_grad():
                for model in (self.teacher, self.student):
                    was_training = model.training
                    cam_forward(model.eval(), probe)  # raises a clear error for e.g. LeNet
                    model.train(was_training)
            # The maps are read off the backbones during the models' ordinary forward, so
            # the student's update still goes through its DDP wrapper (gradients averaged).
            self._cam_recorders = (ModuleOutputRecorder(self.student, ['backbone']),
                                   ModuleOutputRecorder(self.teacher, ['backbone']))
        self.feature_loss = MODELS.build(feature_loss) if feature_loss else None
        self._feature_recorders = None
        if self.feature_loss is not None:
            if not feature_layers or set(feature_layers) != {'student', 'teacher'}:
                raise ValueError('model.feature_loss needs model.feature_layers='
                                 "dict(student=[...], teacher=[...]) naming the modules to "
                                 "compare, e.g. ['backbone.conv1', 'backbone.conv2'].")
            self._feature_recorders = (
                ModuleOutputRecorder(self.student, feature_layers['student'],
                                     'model.feature_layers.student'),
                ModuleOutputRecorder(self.teacher, feature_layers['teacher'],
                                     'model.feature_layers.teacher'))
            if image_shape is not None:
                self._check_feature_pairs(image_shape)
        if student_init_from_teacher not in (None, *STUDENT_INIT_MODES):
            raise ValueError('model.student_init_from_teacher must be None or one of '
                             f'{STUDENT_INIT_MODES}, got {student_init_from_teacher!r}.')
        self.student_init_from_teacher = student_init_from_teacher
        if not isinstance(student_init_seed, int) or student_init_seed < 0:
            raise ValueError('model.student_init_seed must be an int >= 0 (the seed of the '
                             f"fold's k-means), got {student_init_seed!r}.")
        self.student_init_seed = student_init_seed
        if synthesizer_steps < 0 or student_steps < 1:
            raise ValueError('model.synthesizer_steps must be >= 0 and model.student_steps '
                             f'>= 1; got {synthesizer_steps} and {student_steps}.')
        self.synthesizer_steps = synthesizer_steps
        self.student_steps = student_steps
        self.warmup_iters = warmup_iters
        check_batch_sizes({'model.synthesizer.batch_size':
                           getattr(self.synthesizer, 'batch_size', None),
                           'model.student_batch_size': student_batch_size})
        self.student_batch_size = student_batch_size or synthesizer.get('batch_size', 256)
        self.student_augment = (BatchAugment(student_augment, groups=student_augment_groups,
                                             key='model.student_augment')
                                if student_augment else None)
        if self.student_augment is not None and image_shape is not None:
            self.student_augment.check_keeps_shape(image_shape, 'model.student_augment',
                                                   self.synthesizer.image_shape_key)
        if student_mixup is not None and pseudo_label_loss is not None:
            raise ValueError('model.student_mixup blends images, so they no longer have the '
                             'sampled labels model.pseudo_label_loss needs; use one of them.')
        self.student_mixup = PartialMixup(**student_mixup) if student_mixup else None
        # Synthesis throughput of the current iteration (for the log).
        self._synth_time, self._synth_images = 0.0, 0
        # Every image shown to the teacher; a buffer so checkpoints (and resume) keep it.
        self.register_buffer('teacher_queries', torch.zeros((), dtype=torch.long))

    def _check_feature_pairs(self, image_shape: tuple[int, int, int]) -> None:
        """Run both models once on a zero batch and the feature loss on what the recorders
        caught, so a pair of stages it cannot compare (a transformer's tokens, maps of two
        resolutions) fails at build time naming ``model.feature_layers``, with the output
        shape of every stage of both models to pick pairs from."""
        probe = torch.zeros(2, *image_shape)
        with torch.no_grad():
            for model in (self.student, self.teacher):
                with evaluation_mode(model):
                    model(probe, mode='tensor')
            s_feats, t_feats = (r.outputs() for r in self._feature_recorders)
            try:
                self.feature_loss(s_feats, t_feats)
            except ValueError as err:
                stages = {side: output_shapes(model, stage_names(model)[:32], image_shape)
                          for side, model in (('student', self.student),
                                              ('teacher', self.teacher))}
                raise ValueError(
                    f'model.feature_layers: {err} Per-image output shapes of the stages for '
                    f'images of {tuple(image_shape)}: student {stages["student"]}; teacher '
                    f'{stages["teacher"]}.') from err

    @property
    def accumulation_steps_per_iter(self) -> dict[str, int]:
        """Parts that may set ``accumulative_counts``, with their updates per iteration:
        only the student goes through ``update_params`` (see
        ``DataFreeOptimWrapperConstructor``)."""
        return {'student': self.student_steps}

    # ------------------------------------------------------------------ teacher
    def init_weights(self) -> None:
        """Initialise every part but the teacher, which keeps its trained weights; then start
        the student from the teacher (``student_init_from_teacher``) when configured.
        """
        # The runner calls this before training; the teacher keeps its trained weights.
        for name, child in self.named_children():
            if name != 'teacher' and hasattr(child, 'init_weights'):
                child.init_weights()
        if self.student_init_from_teacher:
            init_student_from_teacher(self.student, self.teacher,
                                      self.student_init_from_teacher,
                                      seed=self.student_init_seed)

    def set_work_dir(self, work_dir: str) -> None:
        """Tell the synthesizer where the run writes (called by ``DataFreeTrainLoop``)."""
        unwrap(self.synthesizer).set_work_dir(work_dir)

    def train(self, mode: bool = True) -> 'DataFreeDistiller':
        """Set the train/eval mode of the student and synthesizer; the teacher stays in eval."""
        super().train(mode)
        self.teacher.eval()  # BN running stats and dropout of the teacher never change
        return self

    def teacher_forward(self, images: torch.Tensor, with_features: bool = False
                        ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher logits (and penultimate features); counts every image as a query.

        Returned in float32 also under ``--amp`` autocast, so every loss sees full precision."""
        self.teacher_queries += images.size(0)
        if with_features:
            logits, feats = classifier_logits_and_features(self.teacher, images)
            return logits.float(), feats.float()
        return self.teacher(images, mode='tensor').float(), None

    def teacher_labels(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's top-1 class of each image (counted as queries)."""
        with torch.no_grad():
            return self.teacher_forward(images)[0].argmax(1)

    def student_forward(self, images: torch.Tensor, with_features: bool = False
                        ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Student logits (and, with ``with_features``, ``(logits, penultimate features)``)
        through the unwrapped module (used inside synthesizer steps)."""
        if with_features:
            logits, feats = classifier_logits_and_features(unwrap(self.student), images)
            return logits.float(), feats.float()
        return unwrap(self.student)(images, mode='tensor').float()

    # ------------------------------------------------------------------ training
    def train_step(self, data: dict | None,
                   optim_wrapper: OptimWrapperDict) -> dict[str, torch.Tensor]:
        """One data-free iteration; ``data`` is ``dict(iteration=i)`` from the loop (only the
        warm-up looks at it)."""
        if not isinstance(optim_wrapper, OptimWrapperDict) or 'student' not in optim_wrapper:
            raise TypeError("DataFreeDistiller needs optim_wrapper=dict(constructor="
                            "'DataFreeOptimWrapperConstructor', student=dict(...), "
                            'synthesizer=dict(...)) in the config.')
        synth_ow = optim_wrapper['synthesizer'] if 'synthesizer' in optim_wrapper else None
        log_vars: dict[str, torch.Tensor] = {}
        self._synth_time, self._synth_images = 0.0, 0
        for _ in range(self.synthesizer_steps):
            for k, v in self.synthesizer_step(synth_ow).items():
                log_vars[f'synth.{k}'] = log_vars.get(f'synth.{k}', 0) + v / self.synthesizer_steps
        iteration = (data.get('iteration', self.warmup_iters) if isinstance(data, dict) else
                     self.warmup_iters)
        for _ in range(self.student_steps if iteration >= self.warmup_iters else 0):
            for k, v in self.student_step(optim_wrapper['student']).items():
                log_vars[f'student.{k}'] = log_vars.get(f'student.{k}', 0) + v / self.student_steps
        log_vars['synth_img_per_s'] = torch.tensor(self._synth_images /
                                                   max(self._synth_time, 1e-9))
        queries = self.teacher_queries.detach().clone().float()
        if dist.get_world_size() > 1:
            # Each process queries the teacher with its own batches; the log shows them all
            # (the checkpointed buffer stays one process's count, which resume continues).
            dist.all_reduce(queries, op='sum')
        log_vars['teacher_queries'] = queries
        return log_vars

    def synthesizer_step(self, optim_wrapper: OptimWrapper | None) -> dict[str, torch.Tensor]:
        """One synthesizer update with the student's parameters frozen."""
        synthesizer = unwrap(self.synthesizer)
        start = time.perf_counter()
        mode = evaluation_mode(self.student) if synthesizer.student_in_eval_mode else nullcontext()
        # --amp: the generators' updates run under their wrapper's autocast (see
        # BaseSynthesizer.autocast_synthesis); other synthesizers stay in float32.
        amp = (optim_wrapper.optim_context(synthesizer)
               if optim_wrapper is not None and synthesizer.autocast_synthesis else nullcontext())
        with frozen_parameters(self.student), mode, amp:
            losses = synthesizer.synthesize(self, optim_wrapper)
        self._synth_time += time.perf_counter() - start
        self._synth_images += getattr(synthesizer, 'batch_size', 0)
        return losses

    def student_step(self, optim_wrapper: OptimWrapper) -> dict[str, torch.Tensor]:
        """One student update on fresh synthetic samples labelled by the teacher."""
        start = time.perf_counter()
        synthesizer = unwrap(self.synthesizer)
        if self.pseudo_label_loss is not None:
            images, labels = synthesizer.sample_labelled(self.student_batch_size)
            if labels is None:
                raise ValueError(f'model.pseudo_label_loss needs labelled samples, but '
                                 f'{type(synthesizer).__name__} gives none (use a '
                                 'class-conditional generator) - or remove pseudo_label_loss.')
        else:
            images = synthesizer.sample(self.student_batch_size)
        self._synth_time += time.perf_counter() - start
        self._synth_images += images.size(0)
        if self.student_augment is not None:
            images = self.student_augment(images)
        if self.student_mixup is not None:
            images = self.student_mixup(images)
        # --amp: the forward passes run under the student wrapper's autocast, as mmengine's
        # BaseModel.train_step runs them; the backward goes through its loss scaler.
        with optim_wrapper.optim_context(self.student):
            with torch.no_grad():
                t_logits, _ = self.teacher_forward(images)
            s_logits = self.student(images, mode='tensor').float()
            if isinstance(self.distill_loss, nn.ModuleList):
                losses = {f'loss_kd{i}': loss(s_logits, t_logits)
                          for i, loss in enumerate(self.distill_loss)}
            else:
                losses = {'loss_kd': self.distill_loss(s_logits, t_logits)}
            if self.pseudo_label_loss is not None:
                losses['loss_pseudo_ce'] = self.pseudo_label_loss(s_logits, labels)
            if self.cam_loss is not None:
                s_map, t_map = (deepest_output(r.outputs()[0]).float()
                                for r in self._cam_recorders)
                losses['loss_cam'] = self.cam_loss(s_map, t_map, unwrap(self.student).head.fc,
                                                   self.teacher.head.fc, t_logits.argmax(1))
            if self.feature_loss is not None:
                s_feats, t_feats = (r.outputs() for r in self._feature_recorders)
                losses['loss_feat'] = self.feature_loss(s_feats, t_feats)
        loss, log_vars = self.parse_losses(losses)
        optim_wrapper.update_params(loss)
        return {k: v for k, v in log_vars.items() if k != 'loss'}

    # ------------------------------------------------------------------ evaluation
    def forward(self, inputs: torch.Tensor, data_samples: list | None = None,
                mode: str = 'tensor') -> torch.Tensor | list:
        """``'predict'``/``'tensor'`` run the student (``'predict'`` also the teacher with
        ``eval_teacher_agreement``); training goes through train_step."""
        if mode == 'loss':
            raise RuntimeError('DataFreeDistiller has no supervised loss mode; train it with '
                               'train_step (the DataFreeTrainLoop calls it).')
        return student_forward_for_eval(self, inputs, data_samples, mode)
