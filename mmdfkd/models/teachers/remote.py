"""HTTP client of a teacher served by ``tools/serve_teacher.py`` (or any server speaking the
same protocol).

Protocol: ``POST {url}/predict`` with an ``.npy`` float32 batch ``(N, C, H, W)`` as the body
and an ``X-Request-ID`` header; the answer is JSON ``{"labels": [...]}`` (top-1 server) or
``{"probs": [[...]]}``. ``GET {url}/health`` describes the server. A request retried with the
same id is answered from the server's replay cache and not counted again, so a timeout whose
answer was lost never bills twice on either side.
"""
import io
import time
import uuid

import httpx
import numpy as np
import torch
from mmengine.logging import print_log

RETRY_STATUS = {429, 500, 502, 503, 504}


class TeacherUnavailableError(RuntimeError):
    """The remote teacher did not answer after every retry.

    ``answered`` holds the answers of the leading requests of the call that did arrive
    (``None`` when none did): the server counted those images, so the caller counts them too.
    """

    def __init__(self, message: str, answered: torch.Tensor | None = None) -> None:
        super().__init__(message)
        self.answered = answered


class RemoteTeacherClient:
    """Batching, retrying client of a remote teacher.

    Args:
        url (str): Base URL, e.g. ``'http://127.0.0.1:8000'``.
        output (str): What the caller expects, ``'top1'`` or ``'probs'``; a server answering
            something else is an error (a top-1 server cannot give probabilities).
        batch_size (int): Images per HTTP request.
        timeout_s (float): Per-request timeout.
        max_retries (int): Retries of one request (timeouts, connection errors, 5xx/429)
            before :class:`TeacherUnavailableError`.
        backoff_s (float): First wait between retries; doubles up to ``max_backoff_s``.
        max_backoff_s (float): Longest wait between retries.
    """

    def __init__(self, url: str, output: str = 'top1', batch_size: int = 256,
                 timeout_s: float = 30.0, max_retries: int = 6, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0) -> None:
        if not url.startswith(('http://', 'https://')):
            raise ValueError(f"model.teacher.url must start with http:// or https://, got '{url}'")
        if batch_size < 1 or max_retries < 0:
            raise ValueError('RemoteTeacherClient: batch_size must be >= 1 and max_retries >= 0')
        self.url = url.rstrip('/')
        self.output = output
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s, self.max_backoff_s = backoff_s, max_backoff_s
        self.retries = 0  # retried requests so far (for logs and tests)
        self._client = httpx.Client(timeout=timeout_s)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Answers for ``images`` (N, C, H, W), posted ``batch_size`` at a time with retries:
        labels (N,) for ``'top1'``, probabilities (N, num_classes) for ``'probs'``. A
        :class:`TeacherUnavailableError` carries the answers of the batches posted before
        it (``answered``), so what was bought is kept.
        """
        chunks: list[torch.Tensor] = []
        for i in range(0, images.size(0), self.batch_size):
            try:
                chunks.append(self._post(images[i:i + self.batch_size]))
            except TeacherUnavailableError as e:
                e.answered = torch.cat(chunks) if chunks else None
                raise
        return torch.cat(chunks)

    def _post(self, images: torch.Tensor) -> torch.Tensor:
        buffer = io.BytesIO()
        np.save(buffer, images.detach().cpu().float().numpy(), allow_pickle=False)
        body = buffer.getvalue()
        # One id per batch, kept across retries: the server replays instead of re-counting.
        headers = {'X-Request-ID': uuid.uuid4().hex, 'Content-Type': 'application/octet-stream'}
        last_error, waited = '', 0.0
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = min(self.backoff_s * 2 ** (attempt - 1), self.max_backoff_s)
                self.retries += 1
                print_log(f'remote teacher {self.url}: {last_error}; retry {attempt}/'
                          f'{self.max_retries} in {delay:.1f}s', logger='current', level=30)
                time.sleep(delay)
                waited += delay
            try:
                response = self._client.post(f'{self.url}/predict', content=body,
                                             headers=headers)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last_error = f'{type(e).__name__}: {e}'
                continue
            if response.status_code in RETRY_STATUS:
                last_error = f'HTTP {response.status_code}'
                continue
            if response.status_code != 200:
                raise RuntimeError(f'remote teacher {self.url} refused the request: HTTP '
                                   f'{response.status_code} {response.text[:600]}')
            return self._decode(response.json(), images.size(0))
        raise TeacherUnavailableError(
            f'remote teacher {self.url} did not answer after {self.max_retries + 1} attempts '
            f'({waited:.1f}s of back-off); last error: {last_error}. Is the server running? '
            'Start one with `python tools/serve_teacher.py CONFIG CHECKPOINT --port PORT`, or '
            'raise model.teacher.max_retries.')

    def _decode(self, payload: dict, n: int) -> torch.Tensor:
        key = 'labels' if self.output == 'top1' else 'probs'
        if key not in payload:
            got = [k for k in ('labels', 'probs') if k in payload]
            raise RuntimeError(f'remote teacher {self.url} answered {got}, but this client '
                               f"expects '{key}' (output='{self.output}')")
        answer = torch.tensor(payload[key])
        if answer.size(0) != n:
            raise RuntimeError(f'remote teacher {self.url} answered {answer.size(0)} results '
                               f'for {n} images')
        return answer.long() if key == 'labels' else answer.float()

    def health(self) -> dict:
        """The server's ``/health`` JSON (raises on connection errors)."""
        return self._client.get(f'{self.url}/health').json()

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()
