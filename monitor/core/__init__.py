"""The shared vocabulary of the pipeline: errors, models, Redis keys, text normalisation, the
rule syntax, URL identity, redaction. Imports nothing else of livewatch."""
