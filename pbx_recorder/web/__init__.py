"""The operator console's pages: Jinja2 templates (``templates/``), static files and messages."""
