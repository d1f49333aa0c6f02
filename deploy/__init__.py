"""Azure ML deployment specs (the YAML files here) and the tool that applies them: ``python -m deploy.tool``."""
