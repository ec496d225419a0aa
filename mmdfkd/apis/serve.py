"""An HTTP endpoint in front of a trained classifier (``tools/serve_teacher.py``).

``POST /predict`` takes an ``.npy`` float32 batch ``(N, C, H, W)`` in the model's normalised
input space and answers ``{"labels": [...]}`` (``output='top1'``) or ``{"probs": [[...]]}``;
``GET /health`` describes the server and its query count. Requests carry an ``X-Request-ID``;
a retried id is answered from a replay cache and counted once. A batch the model fails on,
of an image shape it has never answered, gets HTTP 422 with the model's error (a client
mistake such as RGB images for a greyscale teacher, not worth retrying); a failure on a shape
answered before stays a 500, which clients retry.
"""
import io
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import torch
from fastapi import FastAPI, HTTPException, Request


NPY_MAGIC = b'\x93NUMPY'


def build_teacher_app(predict: Callable[[torch.Tensor], torch.Tensor], output: str,
                      num_classes: int, replay_size: int = 4096) -> FastAPI:
    """A FastAPI app answering with ``predict`` (images -> labels or probabilities).

    Args:
        predict: Batch predictor, e.g. :class:`mmdfkd.models.teachers.ClassifierSource`.
        output: ``'top1'`` or ``'probs'`` (what ``predict`` returns).
        num_classes: Reported by ``/health``.
        replay_size: Answers kept for replay of retried request ids.
    """
    app = FastAPI(title='mmdfkd teacher')
    key = 'labels' if output == 'top1' else 'probs'
    state = {'queries': 0, 'requests': 0, 'replays': 0}
    replay: OrderedDict[str, dict] = OrderedDict()
    answered_shapes: set[tuple[int, ...]] = set()

    @app.get('/health')
    def health() -> dict:
        return dict(status='ok', output=output, num_classes=num_classes, **state)

    @app.post('/predict')
    async def predict_route(request: Request) -> dict:
        request_id = request.headers.get('x-request-id')
        body = await request.body()
        # Looked up only after the body is in: from here to storing the answer nothing
        # awaits, so a retry whose original is still uploading (the client timed out) and
        # that original cannot both miss the replay cache and both be counted.
        if request_id and request_id in replay:
            state['replays'] += 1
            return replay[request_id]
        if not body.startswith(NPY_MAGIC):
            # numpy would try the bytes as a pickle and say "contains pickled (object) data",
            # which is no help to a client that sent JSON.
            raise HTTPException(
                400, f'body must be an .npy array (N, C, H, W) as numpy.save writes it '
                f'(starting with {NPY_MAGIC!r}); got {len(body)} bytes starting with '
                f'{body[:12]!r}. Send the images with numpy.save to a BytesIO, as '
                'mmdfkd.models.teachers.RemoteTeacherClient does.')
        try:
            batch = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError) as e:
            raise HTTPException(400, f'body must be an .npy array (N, C, H, W): {e}') from e
        if batch.ndim != 4 or batch.dtype.kind != 'f':
            raise HTTPException(400, f'expected a float array (N, C, H, W), got {batch.dtype} '
                                f'{batch.shape}')
        image_shape = tuple(int(d) for d in batch.shape[1:])
        try:
            answer = predict(torch.from_numpy(batch.astype(np.float32)))
        except Exception as e:
            if image_shape in answered_shapes:
                raise  # a shape answered before: a server fault (500), worth a retry
            # Never answered for this shape: the model cannot take such images, and retrying
            # would only fail again, so the client gets a 4xx it does not retry, with why.
            raise HTTPException(422, f'the teacher cannot take images of shape {image_shape} '
                                f'({type(e).__name__}: {e}); shapes answered so far: '
                                f'{sorted(answered_shapes) or "none"}') from e
        answered_shapes.add(image_shape)
        result = {key: answer.tolist()}
        state['queries'] += int(batch.shape[0])
        state['requests'] += 1
        if request_id:
            replay[request_id] = result
            while len(replay) > replay_size:
                replay.popitem(last=False)
        return result

    return app
