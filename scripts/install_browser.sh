#!/usr/bin/env bash
# Debian's chromium and chromium-driver, for tests/test_browser_lab.py (JupyterLab in headless Chromium).
# Idempotent: does nothing when both are installed. Never fails the caller: where they cannot be installed
# (no apt-get, not root and no sudo, no package source) it says why, and the test skips with that reason.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
  echo "install_browser: chromium and chromedriver already installed"
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_browser: no apt-get here; the JupyterLab browser test will skip"
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install_browser: not root and no sudo; the JupyterLab browser test will skip"
    exit 0
  fi
fi
if $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; then
  echo "install_browser: installed $(chromium --version 2>/dev/null) and chromedriver"
else
  echo "install_browser: apt-get could not install chromium chromium-driver; the JupyterLab browser test will skip"
fi
exit 0
