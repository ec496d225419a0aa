import os
import os.path as osp

import pytest
import torch

from mmdfkd.models.synthesizers import SyntheticDataPool


def _batch(value: float, n: int = 4):
    return torch.full((n, 1, 2, 2), value), torch.full((n, 3), value)


def test_pool_adds_samples_and_caps_fifo(tmp_path):
    pool = SyntheticDataPool(max_images=8, policy='fifo', cache_batches=1)
    pool.set_root(str(tmp_path))
    for v in (1.0, 2.0, 3.0):
        pool.add(*_batch(v))
    assert len(pool) == 8 and len(os.listdir(tmp_path)) == 2  # oldest batch file deleted
    images, logits = pool.sample(64)
    assert images.shape == (64, 1, 2, 2) and images.dtype == torch.float32
    assert set(images[:, 0, 0, 0].tolist()) == {2.0, 3.0}
    torch.testing.assert_close(images[:, 0, 0, 0], logits[:, 0])  # pairs stay together


def test_a_crash_after_a_checkpoint_resumes_with_the_whole_checkpointed_pool(tmp_path):
    """The cap used to delete a dropped batch's file at once, so a run that crashed a while
    after its checkpoint resumed with only what eviction had left of the checkpoint's pool
    (a warning, and a different run from then on)."""
    def values(pool):
        return sorted(set(pool.sample(200)[0][:, 0, 0, 0].tolist()))

    def restore(state):
        restored = SyntheticDataPool(max_images=8)
        restored.set_root(str(tmp_path))
        restored.load_state_dict(state)
        return restored

    pool = SyntheticDataPool(max_images=8)  # two batches of 4
    pool.set_root(str(tmp_path))
    for v in (1.0, 2.0):
        pool.add(*_batch(v))
    first = pool.state_dict()  # checkpoint 1 names batches 1 and 2
    for v in (3.0, 4.0):
        pool.add(*_batch(v))  # drops 1 and 2, whose files checkpoint 1 still needs
    assert values(pool) == [3.0, 4.0] and len(os.listdir(tmp_path)) == 4
    assert len(restore(first)) == 8 and values(restore(first)) == [1.0, 2.0]

    second = pool.state_dict()  # checkpoint 2 names 3 and 4; 1 and 2 go once it is saved
    assert len(os.listdir(tmp_path)) == 4
    pool.add(*_batch(5.0))  # checkpoint 2 is on disk now: 1 and 2 are deleted; 3 is kept
    pool.add(*_batch(6.0))
    pool.add(*_batch(7.0))  # 5 was never checkpointed: deleted at once
    assert len(os.listdir(tmp_path)) == 4  # 3, 4 (checkpoint 2's) and the pool's 6, 7
    assert values(restore(second)) == [3.0, 4.0] and values(pool) == [6.0, 7.0]


def test_pool_index_round_trips_through_state_dict(tmp_path):
    pool = SyntheticDataPool(max_images=100)
    pool.set_root(str(tmp_path))
    pool.add(*_batch(5.0))
    pool.add(*_batch(7.0, n=2))
    state = pool.state_dict()
    restored = SyntheticDataPool(max_images=100)
    restored.set_root(str(tmp_path))
    restored.load_state_dict(state)
    assert len(restored) == 6
    assert set(restored.sample(50)[0][:, 0, 0, 0].tolist()) == {5.0, 7.0}
    # a later add does not overwrite existing files
    restored.add(*_batch(9.0))
    assert len(os.listdir(tmp_path)) == 3
    # files that vanished are dropped from the index, not crashed on
    os.remove(osp.join(tmp_path, state['_extra_state']['batches'][0][0]))
    again = SyntheticDataPool()
    again.set_root(str(tmp_path))
    again.load_state_dict(restored.state_dict())
    assert len(again) == 6


def test_pool_errors(tmp_path):
    with pytest.raises(ValueError, match='policy'):
        SyntheticDataPool(policy='lifo')
    pool = SyntheticDataPool()
    pool.set_root(str(tmp_path))
    with pytest.raises(RuntimeError, match='empty'):
        pool.sample(1)


def test_a_pool_method_without_synthesis_steps_names_the_key(teacher_ckpt, tmp_path):
    """`model.synthesizer_steps=0` (allowed: generator methods can train on a fixed
    generator, pool methods on a resumed pool) used to stop a fresh pool run with
    'synthesize() before sample()', which names no config key."""
    from mmdfkd.apis import build_runner

    from .runner_utils import datafree_cfg
    cfg = datafree_cfg('deepinversion/deepinversion_lenet5bn_lenet5half_fmnist.py',
                       str(tmp_path), teacher_ckpt, max_iters=1,
                       **{'model.synthesizer_steps': 0})
    with pytest.raises(RuntimeError, match=r'pool is empty.*model.synthesizer_steps must be '
                                           r'>= 1'):
        build_runner(cfg).train()


def test_updated_images_reach_disk_with_the_checkpoint(tmp_path):
    pool = SyntheticDataPool(root=str(tmp_path), cache_batches=8)
    images = torch.zeros(6, 1, 4, 4)
    pool.add(images[:3], labels=torch.tensor([0, 1, 2]))
    pool.add(images[3:], labels=torch.tensor([3, 4, 5]))
    pool.update_images(torch.tensor([1, 4]), torch.ones(2, 1, 4, 4))
    state = pool.get_extra_state()  # what a checkpoint stores: flushes the changed files
    fresh = SyntheticDataPool(root=str(tmp_path))
    fresh.set_extra_state(state)
    got = fresh.gather(torch.arange(6))
    assert torch.equal(got['labels'], torch.arange(6))
    assert got['images'].flatten(1).mean(1).tolist() == [0, 1, 0, 0, 1, 0]
    # class-balanced sampling follows the stored labels
    assert set(fresh.sample_index(600, balanced=True).tolist()) == set(range(6))


def test_refined_images_do_not_overwrite_what_the_checkpoint_saved(tmp_path):
    """Refined images (DIP-KD's contrast phase) were written over their batch's file when
    they left the cache, so a resume from the last checkpoint read images refined after it."""
    def restore(state):
        restored = SyntheticDataPool(root=str(tmp_path))
        restored.set_extra_state(state)
        return restored.gather(torch.arange(6))['images'].flatten(1).mean(1).tolist()

    pool = SyntheticDataPool(root=str(tmp_path), cache_batches=1)
    pool.add(torch.zeros(3, 1, 4, 4), labels=torch.tensor([0, 1, 2]))
    pool.add(torch.zeros(3, 1, 4, 4), labels=torch.tensor([3, 4, 5]))
    first = pool.get_extra_state()  # checkpoint 1
    pool.update_images(torch.tensor([1, 4]), torch.ones(2, 1, 4, 4))  # 4 pushes 1's file out
    assert restore(first) == [0, 0, 0, 0, 0, 0]  # checkpoint 1 still reads its images
    second = pool.get_extra_state()  # checkpoint 2 flushes the refined batch
    assert restore(second) == [0, 1, 0, 0, 1, 0] and restore(first) == [0] * 6
    assert pool.gather(torch.arange(6))['labels'].tolist() == list(range(6))
    pool.add(torch.zeros(3, 1, 4, 4), labels=torch.tensor([6, 7, 8]))  # checkpoint 2 saved
    assert len(os.listdir(tmp_path)) == 3  # checkpoint 1's originals are gone


def test_cache_stays_within_its_memory_budget_and_evicts_least_recently_used(tmp_path):
    # one batch: 4 images of 1x16x16 in float16 + 4x3 float16 logits = 2,072 bytes
    per_batch = 4 * 256 * 2 + 4 * 3 * 2
    pool = SyntheticDataPool(root=str(tmp_path), cache_mb=2.5 * per_batch / 2**20)
    names = []
    for v in (1.0, 2.0, 3.0):
        pool.add(torch.full((4, 1, 16, 16), v), torch.full((4, 3), v))
        names.append(pool._batches[-1][0])
    assert list(pool._cache) == names[1:]  # two fit; the oldest left the cache, not the pool
    assert pool._cached_bytes == 2 * per_batch
    pool._load(names[1])  # a hit makes it the most recently used
    pool._load(names[0])  # read back from disk, evicting the least recently used (names[2])
    assert list(pool._cache) == [names[1], names[0]]
    assert len(pool) == 12 and set(pool.sample(64)[0][:, 0, 0, 0].tolist()) == {1.0, 2.0, 3.0}
    with pytest.raises(ValueError, match='cache_mb'):
        SyntheticDataPool(cache_mb=0)


@pytest.mark.skipif(not osp.exists('/dev/full'), reason='needs /dev/full to fill a write')
def test_a_batch_the_disk_refuses_is_named_and_left_out_of_the_pool(tmp_path):
    """A full disk made torch.save fail with an "enforce fail ... unexpected pos" and left a
    truncated batch file. The write now fails with the file, the cause and what to do, and
    the pool (index and files) is as before the add."""
    from mmdfkd.utils.atomic_save import WriteFailedError
    pool = SyntheticDataPool(max_images=100)
    pool.set_root(str(tmp_path))
    pool.add(*_batch(1.0))
    # The next batch's file is written through `<name>.part`: send that write to /dev/full.
    os.symlink('/dev/full', tmp_path / 'batch_r0_0000001.pt.part')
    with pytest.raises(WriteFailedError, match=r'batch_r0_0000001\.pt: the disk is full.*'
                       r'--resume'):
        pool.add(*_batch(2.0))
    assert len(pool) == 4 and sorted(os.listdir(tmp_path)) == ['batch_r0_0000000.pt']
    assert set(pool.sample(16)[0][:, 0, 0, 0].tolist()) == {1.0}
    pool.add(*_batch(3.0))  # space again: the run goes on
    assert len(pool) == 8


def test_an_overwrite_that_fails_keeps_the_old_file(tmp_path):
    """Written whole or not at all: a failed rewrite of a file leaves the old one intact."""
    from mmdfkd.utils.atomic_save import WriteFailedError, save_whole
    path = str(tmp_path / 'record.pt')
    save_whole({'x': torch.ones(3)}, path, 'record', 'advice')

    def interrupted(obj, file):
        file.write(b'half a file')
        raise OSError(5, 'Input/output error')

    with pytest.raises(WriteFailedError, match=r'could not write record .*record\.pt: '
                       r'OSError: .*Input/output error.*advice'):
        save_whole({'x': torch.zeros(3)}, path, 'record', 'advice', save=interrupted)
    torch.testing.assert_close(torch.load(path)['x'], torch.ones(3))
    assert os.listdir(tmp_path) == ['record.pt']
