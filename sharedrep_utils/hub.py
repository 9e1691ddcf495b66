"""Where models come from: hub ids, local paths, or "pkg:<module>" for weights a Python package ships."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator


def resolve_model(name: str) -> str:
    """A hub id or local path as is; "pkg:<module>" is a model that a Python package ships."""
    if not name.startswith("pkg:"):
        return name
    module = importlib.import_module(name[4:])
    if hasattr(module, "get_model_path"):
        return str(module.get_model_path())
    return str(module.__path__[0])


@contextlib.contextmanager
def loading(name: str) -> Iterator[None]:
    """Re-raise a failed load with the model's name: transformers' offline error does not say which."""
    try:
        yield
    except OSError as error:
        raise OSError(
            f"Could not load model {name!r} (offline, not cached, or no access); "
            f"download it once with network access or point the profile at a local copy. Cause: {error}"
        ) from error
