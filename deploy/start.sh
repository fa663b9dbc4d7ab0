#!/bin/sh
# The container's entry point. The model is either mounted (LLM_SERVICE_MODEL_PATH names
# the file) or downloaded from the Hub at start into the models volume: model.repo and
# model.file, as scripts/download_model.py reads them; a file already there is not
# downloaded again. LLM_SERVICE_DOWNLOAD=0 skips the download (then the server loads what
# the folder has, or the embedded model). Arguments are server flags.
set -eu
if [ -z "${LLM_SERVICE_MODEL_PATH:-}" ] && [ "${LLM_SERVICE_DOWNLOAD:-1}" != "0" ]; then
    python scripts/download_model.py
fi
# exec: the server replaces this shell, so SIGTERM reaches it directly.
exec python -m app "$@"
