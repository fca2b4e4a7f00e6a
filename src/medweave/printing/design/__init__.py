"""Patient-specific designs made from segmented volumes: the symmetry plane, the cranial implant.

Long steps report progress through a ``progress(done, total)`` callable and check a
``cancelled()`` callable between steps; when it returns True they raise ``Cancelled``.
"""

from __future__ import annotations


class Cancelled(Exception):
    """A design step saw ``cancelled()`` return True and stopped between steps."""
