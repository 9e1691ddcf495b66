"""Test-wide guards: no network, Hugging Face libraries in offline mode.

Every test runs with sockets blocked (connect, connect_ex, create_connection raise), so a hidden
download fails loudly instead of quietly reaching the hub, and with HF_HUB_OFFLINE=1.
"""

import os
import socket
import sys

import pytest

# huggingface_hub reads HF_HUB_OFFLINE once, when it is first imported (test modules import it at
# collection time, before any fixture runs), so the variable is also set here, for this process.
os.environ["HF_HUB_OFFLINE"] = "1"


class NetworkBlockedError(OSError):
    """Raised by any attempt to open a network connection during the tests."""


def _blocked(*args, **kwargs):
    raise NetworkBlockedError(f"network access is blocked in tests (attempted connection: {args[1:] or args})")


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", _blocked)
    monkeypatch.setattr(socket, "create_connection", _blocked)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None and hasattr(constants, "HF_HUB_OFFLINE"):
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
