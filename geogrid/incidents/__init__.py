"""Incidents: what state a report is in, where it goes, by when, and how the grids did (pure functions).

``states`` (the closed loop and its legal transitions), ``catalogue`` (the service catalogue: categories,
owners and time limits), ``calendar`` (working days and hours: weekends, public holidays, 调休). Stored
through :mod:`geogrid.db.incidents`.
"""
