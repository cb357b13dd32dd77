"""The long-lived objects of one app (feature store, job runner, read limits, answer cache) as typed route
dependencies."""

from typing import Annotated

from fastapi import Depends, Request

from api.answers import Answers
from api.reads import ReadLimits
from service.jobs.runner import JobRunner
from storage.read import FeatureStore


async def _store(request: Request) -> FeatureStore:
    return request.app.state.store


async def _runner(request: Request) -> JobRunner:
    return request.app.state.runner


async def _reads(request: Request) -> ReadLimits:
    return request.app.state.reads


async def _answers(request: Request) -> Answers:
    return request.app.state.answers


Store = Annotated[FeatureStore, Depends(_store)]
Runner = Annotated[JobRunner, Depends(_runner)]
Reads = Annotated[ReadLimits, Depends(_reads)]
Cache = Annotated[Answers, Depends(_answers)]
