"""DDP wrapper for data-free algorithms that also runs on CPU (gloo)."""
import torch
from mmengine.model import MMSeparateDistributedDataParallel, is_model_wrapper
from torch import nn

from mmdfkd.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class DataFreeSeparateDDP(MMSeparateDistributedDataParallel):
    """:class:`MMSeparateDistributedDataParallel` that works without GPUs and keeps
    checkpoints free of wrapper prefixes.

    Each trainable child (student, synthesizer) gets its own DDP wrapper and the frozen
    teacher none, and ``train_step`` is the algorithm's own. Two fixes over mmengine's:

    * mmengine's runner passes ``device_ids=[LOCAL_RANK]`` to every DDP subclass, which DDP
      rejects for CPU modules, so the argument is dropped when there is no GPU;
    * the wrapped children would save as ``student.module.*``, which a single-process run
      (or ``tools/export_student.py``) cannot load; a state-dict hook on the algorithm saves
      ``student.*``. mmengine loads checkpoints (resume, ``load_from``) with its own
      ``load_state_dict``, which steps through DDP wrappers and so expects exactly these
      plain keys. (A load hook that turned them back into ``student.module.*`` made every
      distributed resume restore no student or generator weight: mmengine only warned of
      missing keys and the run went on from the initial weights.)
    """

    def __init__(self, module: nn.Module, broadcast_buffers: bool = False,
                 find_unused_parameters: bool = False, **kwargs) -> None:
        if not torch.cuda.is_available():
            kwargs.pop('device_ids', None)
            kwargs.pop('output_device', None)
        super().__init__(module, broadcast_buffers=broadcast_buffers,
                         find_unused_parameters=find_unused_parameters, **kwargs)
        wrapped = [name for name, child in module.named_children() if is_model_wrapper(child)]
        module._register_state_dict_hook(_strip_wrapper_keys(wrapped))


def _strip_wrapper_keys(children: list[str]):

    def hook(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
        for key in list(state_dict):
            for child in children:
                wrapped = f'{prefix}{child}.module.'
                if key.startswith(wrapped):
                    state_dict[f'{prefix}{child}.' + key[len(wrapped):]] = state_dict.pop(key)
        return state_dict

    return hook

