"""The baseline of the HTTP benchmark: the classic small setup, a bare FastAPI endpoint
that calls ``predict_one`` on the same River model, with the features in the request
(no feature computation, no audit, no launches). Run by uvicorn:

    BENCH_LAKE=/path/to/lake python -m uvicorn benchmarks.bare_app:create --factory
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from lake import Lake
from training import ModelRegistry


class Body(BaseModel):
    features: list[dict[str, Any]]


def create() -> FastAPI:
    model = ModelRegistry(Lake(os.environ["BENCH_LAKE"])).load("eta", alias="champion").model
    app = FastAPI()

    @app.post("/predict")
    async def predict(body: Body) -> dict[str, list[float]]:  # the fastest bare form
        return {"predictions": [float(model.predict_one(x)) for x in body.features]}

    return app
