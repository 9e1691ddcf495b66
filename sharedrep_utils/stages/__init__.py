"""The pipeline's stages, one module each: `params(cfg, ...)` (what its manifest hashes, including the
hashes of the stages it reads) and `main(cfg, ...)` (do the work unless done; return what it made).

Run one from a notebook with `launcher.launch(cfg, stage, ...)`, from a shell with
`python -m sharedrep_utils.stages.<stage> --profile ...`, or under `accelerate launch` the same way.
"""
