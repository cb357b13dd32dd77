"""The long-lived objects of one app (feature store, job runner) as typed route dependencies."""

from typing import Annotated

from fastapi import Depends, Request

from service.jobs.runner import JobRunner
from storage.read import FeatureStore


def _store(request: Request) -> FeatureStore:
    return request.app.state.store


def _runner(request: Request) -> JobRunner:
    return request.app.state.runner


Store = Annotated[FeatureStore, Depends(_store)]
Runner = Annotated[JobRunner, Depends(_runner)]
