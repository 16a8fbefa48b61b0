"""DiffusionService: the model catalogue is real today; sampling and reconstruction are pending."""

from __future__ import annotations

import grpc

from idf.engine import models
from idf.server.errors import invalid_argument
from idf.server.rpc import unary
from idf.server.services.pending import PendingDiffusion
from idf.v1 import diffusion_pb2

_TASKS = {
    "forecast": diffusion_pb2.MODEL_TASK_FORECAST,
    "denoise": diffusion_pb2.MODEL_TASK_DENOISE,
    "regime": diffusion_pb2.MODEL_TASK_REGIME,
}
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


class DiffusionServicer(PendingDiffusion):
    @unary
    async def ListModels(
        self, request: diffusion_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> diffusion_pb2.ListModelsResponse:
        if request.page_size < 0:
            raise invalid_argument("page_size", "must be >= 0")
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        catalogue = sorted(models.CATALOGUE, key=lambda m: m.name)
        start = 0
        if request.page_token:
            # the token is the last name of the previous page: stable under catalogue growth
            start = next(
                (i for i, m in enumerate(catalogue) if m.name > request.page_token), len(catalogue)
            )
        page = catalogue[start : start + size]
        more = start + size < len(catalogue)
        return diffusion_pb2.ListModelsResponse(
            models=[
                diffusion_pb2.Model(
                    name=m.name, task=_TASKS[m.task], description=m.description,
                    version=m.version, learned=m.learned, history_frames=m.history_frames,
                )
                for m in page
            ],
            next_page_token=page[-1].name if more and page else "",
        )
