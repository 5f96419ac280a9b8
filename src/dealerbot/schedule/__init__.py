"""Timetables (``schedules/*.yaml``) and the scheduler that runs them."""
