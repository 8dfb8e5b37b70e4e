"""Configuration: value types, the pydantic models (feeds, rules, channels), the YAML loader
with `${VAR}` substitution, secret checks."""
