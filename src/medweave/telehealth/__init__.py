"""Telehealth: scheduling, the virtual waiting room, video visits and visit notes (issue 5).

Pure modules (no I/O): ``availability``, ``calendar_file``, ``turn``. ``booking`` writes through the
record store; only it touches ``tables``.
"""
