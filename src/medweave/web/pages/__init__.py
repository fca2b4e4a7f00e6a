"""The server-rendered pages: Jinja2 templates, HTMX for partial updates, no build step.

``session`` holds the cookie and CSRF handling, ``routing`` the page route class and the
dependencies every page uses, ``render`` the template environment. ``charts``, ``views`` and
``history`` are pure: they turn FHIR resources and audit rows into what a template shows. The
remaining modules are the pages, one per audience (``signin``, ``patient``, ``clinician``,
``admin``, ``breakglass``); every read of patient data goes through ``RecordService`` with the
session's ``Principal``, so it is access-checked and audited there.
"""
