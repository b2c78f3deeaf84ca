"""The operator console: server-rendered pages (Jinja2, autoescaped) over the operator service.

Templates in ``templates/``, plain CSS and JS (no build step, nothing from another host) in
``static/`` served at ``/static``; messages per area in ``messages_<area>.py`` merged by
:mod:`pbx_recorder.web.i18n`.  Every row a page shows comes from the same scoped query layer as
the JSON API (:mod:`pbx_recorder.service.api_calls`)."""
