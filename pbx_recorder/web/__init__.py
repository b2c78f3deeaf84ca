"""The operator console's pages: Jinja2 templates and static files (plain JS and CSS, no build)."""
