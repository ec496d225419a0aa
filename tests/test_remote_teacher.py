"""The remote path against a real server (tools/serve_teacher.py in a subprocess)."""
import socket
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest
import torch

from mmdfkd.models.teachers import HardLabelTeacher, TeacherUnavailableError
from mmdfkd.registry import MODELS

from .conftest import LENET5BN, ROOT, config_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Server:
    """``tools/serve_teacher.py`` as a child process."""

    def __init__(self, checkpoint: str, port: int, config: str | None = None) -> None:
        self.cmd = [sys.executable, f'{ROOT}/tools/serve_teacher.py',
                    config or config_path('teachers', 'lenet5bn_fmnist.py'), checkpoint,
                    '--port', str(port)]
        self.url = f'http://127.0.0.1:{port}'
        self.proc = None

    def start(self, wait: bool = True) -> 'Server':
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if httpx.get(f'{self.url}/health', timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError('teacher server did not start')

    def health(self) -> dict:
        return httpx.get(f'{self.url}/health', timeout=5).json()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def server(teacher_ckpt):
    srv = Server(teacher_ckpt, _free_port()).start()
    yield srv
    srv.stop()


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, 1, 32, 32, generator=torch.Generator().manual_seed(seed))


def _local_labels(teacher_ckpt: str, images: torch.Tensor) -> torch.Tensor:
    model = MODELS.build(LENET5BN)
    model.load_state_dict(torch.load(teacher_ckpt, weights_only=False)['state_dict'])
    with torch.no_grad():
        return model.eval()(images, mode='tensor').argmax(1)


def test_client_survives_server_restart_without_losing_or_double_counting(server,
                                                                          teacher_ckpt):
    teacher = HardLabelTeacher(num_classes=10, url=server.url,
                               remote=dict(batch_size=16, backoff_s=0.5, max_retries=10))
    first = _images(40, seed=0)
    assert torch.equal(teacher(first), _local_labels(teacher_ckpt, first))
    assert int(teacher.queries) == 40
    assert server.health()['queries'] == 40 and server.health()['requests'] == 3  # 16+16+8

    # The server goes down mid-run and comes back while the client retries.
    server.stop()
    restart = threading.Timer(1.0, server.start, kwargs=dict(wait=False))
    restart.start()
    second = _images(40, seed=1)
    labels = teacher(second)
    restart.join()
    client = teacher._SourcedTeacher__source
    assert client.retries > 0, 'the client should have retried while the server was down'
    assert torch.equal(labels, _local_labels(teacher_ckpt, second))
    assert int(teacher.queries) == 80  # every image once, none lost, none twice
    assert server.health()['queries'] == 40  # the new server saw the second 40 once each
    # Cached images are not bought again.
    teacher(first)
    assert int(teacher.queries) == 80 and int(teacher.cache_hits) == 40


def test_retried_request_id_is_answered_once(server):
    buffer = __import__('io').BytesIO()
    np.save(buffer, _images(5, seed=2).numpy())
    headers = {'X-Request-ID': 'same-id'}
    a = httpx.post(f'{server.url}/predict', content=buffer.getvalue(), headers=headers).json()
    b = httpx.post(f'{server.url}/predict', content=buffer.getvalue(), headers=headers).json()
    assert a == b and len(a['labels']) == 5 and 'probs' not in a
    health = server.health()
    assert health['queries'] == 5 and health['replays'] == 1
    bad = httpx.post(f'{server.url}/predict', json={'images': [[0.1]]})
    assert bad.status_code == 400
    # what was sent and how to send it, not numpy's "contains pickled (object) data"
    assert "got 18 bytes starting with b'{\"images\":[['" in bad.json()['detail']
    assert 'numpy.save' in bad.json()['detail'] and 'pickled' not in bad.json()['detail']
    buffer = __import__('io').BytesIO()
    np.save(buffer, np.zeros((2, 32, 32), np.float32))
    flat = httpx.post(f'{server.url}/predict', content=buffer.getvalue())
    assert flat.status_code == 400 and '(2, 32, 32)' in flat.json()['detail']


def test_clear_error_when_the_server_stays_down():
    teacher = HardLabelTeacher(num_classes=10, url=f'http://127.0.0.1:{_free_port()}',
                               remote=dict(max_retries=2, backoff_s=0.05))
    with pytest.raises(TeacherUnavailableError, match='after 3 attempts.*serve_teacher.py'):
        teacher(_images(2, seed=3))
    assert int(teacher.queries) == 0


def test_answers_bought_before_the_server_went_down_are_counted_and_cached(server,
                                                                          teacher_ckpt):
    """The server counts every request it answers. When it went down between two requests of
    one call, the client dropped the answers it had got: its count fell short of what was
    spent, and a resume bought those images again."""
    teacher = HardLabelTeacher(num_classes=10, url=server.url,
                               remote=dict(batch_size=16, max_retries=1, backoff_s=0.05))
    client = teacher._SourcedTeacher__source
    post = client._post

    def post_then_go_down(images):
        answer = post(images)
        server.stop()  # after the first request of the call
        return answer

    client._post = post_then_go_down
    images = _images(40, seed=4)
    with pytest.raises(TeacherUnavailableError) as failure:
        teacher(images)
    assert failure.value.answered is not None and len(failure.value.answered) == 16
    assert int(teacher.queries) == 16  # what the server had answered and counted
    client._post = post
    server.start()
    labels = teacher(images)
    assert torch.equal(labels, _local_labels(teacher_ckpt, images))
    assert int(teacher.queries) == 40 and int(teacher.cache_hits) == 16
    assert server.health()['queries'] == 24  # the restarted server sold only the rest


def test_images_the_served_model_cannot_take_are_refused_at_once(server):
    """RGB images sent to a greyscale teacher used to come back as HTTP 500, which the client
    retried with back-off (about 24 s with the defaults) and then reported as 'Is the server
    running?'; the model's own error stayed in the server's log."""
    teacher = HardLabelTeacher(num_classes=10, url=server.url,
                               remote=dict(max_retries=3, backoff_s=0.5))
    rgb = torch.randn(4, 3, 32, 32)
    with pytest.raises(RuntimeError, match=r'HTTP 422 .*cannot take images of shape '
                                           r'\(3, 32, 32\).*none'):
        teacher(rgb)
    client = teacher._SourcedTeacher__source
    assert client.retries == 0 and int(teacher.queries) == 0
    assert server.health()['queries'] == 0
    assert teacher(_images(2, seed=4)).shape == (2,)


def test_a_failure_on_an_answered_shape_stays_retryable():
    """Only a shape the model never answered is the client's mistake (422); a failure on a
    shape answered before is the server's (500), which clients retry."""
    import io

    from fastapi.testclient import TestClient

    from mmdfkd.apis.serve import build_teacher_app
    broken = {'now': False}

    def predict(images: torch.Tensor) -> torch.Tensor:
        if broken['now']:
            raise RuntimeError('device lost')
        return images.flatten(1).sum(1).gt(0).long()

    client = TestClient(build_teacher_app(predict, 'top1', 2), raise_server_exceptions=False)

    def post(shape: tuple[int, ...]) -> httpx.Response:
        buffer = io.BytesIO()
        np.save(buffer, np.ones(shape, dtype=np.float32))
        return client.post('/predict', content=buffer.getvalue())

    assert post((2, 1, 4, 4)).json() == {'labels': [1, 1]}
    broken['now'] = True
    assert post((2, 1, 4, 4)).status_code == 500
    refused = post((2, 3, 4, 4))
    assert refused.status_code == 422
    assert 'shape (3, 4, 4) (RuntimeError: device lost); shapes answered so far: [(1, 4, 4)]' \
        in refused.json()['detail']


def test_serve_teacher_refuses_a_data_free_config_and_a_bad_port(teacher_ckpt):
    """A data-free config (its teacher is inside `model.teacher`) used to end in
    'model.head.num_classes is not set'; --port 99999 in an OverflowError from bind(); a port
    in use printed "serving ..." and then uvicorn's bind error."""
    cmd = [sys.executable, f'{ROOT}/tools/serve_teacher.py',
           config_path('dipkd', 'dipkd_lenet5_lenet5_fmnist.py'), teacher_ckpt]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert 'is a data-free config (model.type=DIPKD): serve the classifier config' in done.stderr
    done = subprocess.run(cmd[:2] + [config_path('teachers', 'lenet5bn_fmnist.py'),
                                     teacher_ckpt, '--port', '99999'],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and 'takes a TCP port in 1-65535' in done.stderr
    # A port already held: refused before the model loads, without "serving ..." first.
    with socket.socket() as held:
        held.bind(('127.0.0.1', 0))
        held.listen()
        port = str(held.getsockname()[1])
        done = subprocess.run(cmd[:2] + [config_path('teachers', 'lenet5bn_fmnist.py'),
                                         teacher_ckpt, '--port', port],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and 'serving' not in done.stdout
    assert f'cannot serve on 127.0.0.1:{port}' in done.stderr
    # A missing checkpoint names the teacher recipe's own output, not a data-free option.
    done = subprocess.run(cmd[:2] + [config_path('teachers', 'lenet5bn_fmnist.py'),
                                     teacher_ckpt + '.missing'],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and 'no such checkpoint file; give the epoch_N.pth' in \
        done.stderr and '--cfg-options' not in done.stderr


def test_a_teacher_config_naming_a_zoo_config_is_served(tmp_path):
    """A teacher config that names the config it was trained with
    (`model = dict(cfg_path='mmpretrain::...')`, as the data-free configs may) used to be
    refused with 'model.head.num_classes is not set': the count is in the named config."""
    from mmdfkd.utils import resolve_model_reference
    config = tmp_path / 'my_teacher.py'
    config.write_text("model = dict(cfg_path='mmpretrain::resnet/resnet18_8xb16_cifar10.py')\n")
    torch.manual_seed(0)
    model = MODELS.build(resolve_model_reference(
        dict(cfg_path='mmpretrain::resnet/resnet18_8xb16_cifar10.py'))).eval()
    ckpt = str(tmp_path / 'teacher.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)
    server = Server(ckpt, _free_port(), config=str(config)).start()
    try:
        assert server.health()['num_classes'] == 10
        images = torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        teacher = HardLabelTeacher(num_classes=10, url=server.url)
        with torch.no_grad():
            expected = model(images, mode='tensor').argmax(1)
        assert torch.equal(teacher(images), expected)
    finally:
        server.stop()


def test_a_retry_sent_while_its_original_uploads_is_counted_once(teacher_ckpt):
    """A client that times out while its request body is still uploading retries with the
    same id. The server looked the id up before reading the body, so the original (still
    uploading) and the retry both missed the replay cache: the batch was predicted and
    counted twice."""
    import asyncio

    from mmdfkd.apis.serve import build_teacher_app
    from mmdfkd.models.teachers import ClassifierSource

    app = build_teacher_app(ClassifierSource(LENET5BN, teacher_ckpt), 'top1', num_classes=10)
    buffer = __import__('io').BytesIO()
    np.save(buffer, _images(6, seed=4).numpy())
    body = buffer.getvalue()
    headers = {'X-Request-ID': 'uploading'}

    async def scenario() -> tuple[dict, dict, dict]:
        rest_may_follow = asyncio.Event()

        async def slow_upload():
            yield body[:64]  # the header of the .npy, then the connection stalls
            await rest_may_follow.wait()
            yield body[64:]

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url='http://teacher') as client:
            original = asyncio.create_task(
                client.post('/predict', content=slow_upload(), headers=headers))
            await asyncio.sleep(0.2)  # the original is inside the server, mid-upload
            retry = await client.post('/predict', content=body, headers=headers)
            rest_may_follow.set()
            late = await original
            health = (await client.get('/health')).json()
        return retry.json(), late.json(), health

    retry, late, health = asyncio.run(scenario())
    assert retry == late and len(retry['labels']) == 6
    assert health['queries'] == 6 and health['requests'] == 1 and health['replays'] == 1
