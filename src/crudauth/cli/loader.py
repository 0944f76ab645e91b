"""Find the application's ``CRUDAuth`` from an import path, as ``uvicorn`` finds an app."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from crudauth.auth import CRUDAuth

ENV_VAR = "CRUDAUTH_APP"


class LoadError(Exception):
    """The import path names nothing usable."""


def load_auth(path: str | None) -> CRUDAuth:
    """``module.path:attribute`` (or ``CRUDAUTH_APP``) to the ``CRUDAuth`` it names. The
    current directory is importable, as it is for ``uvicorn``."""
    path = path or os.environ.get(ENV_VAR)
    if not path:
        raise LoadError(f"name the app: `--app module.path:auth` or {ENV_VAR}=module.path:auth")
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise LoadError(f"{path!r} is not of the form module.path:attribute")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LoadError(f"cannot import {module_name!r}: {exc}") from exc
    target: object = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise LoadError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not isinstance(target, CRUDAuth):
        raise LoadError(f"{path!r} is a {type(target).__name__}, not a CRUDAuth")
    return target


@asynccontextmanager
async def opened(auth: CRUDAuth) -> AsyncIterator[CRUDAuth]:
    """``auth`` with its stores open, closed afterwards (what the app's lifespan does)."""
    await auth.initialize()
    try:
        yield auth
    finally:
        await auth.shutdown()
