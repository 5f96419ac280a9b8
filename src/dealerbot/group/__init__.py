"""A dealership group: many stores, one PostgreSQL store, one timetable, workers on many
machines (see docs/groups.md).

* :mod:`dealerbot.group.engine`: the task engine (procrastinate): queues, locks, workers,
  taking over the jobs of a worker that died.
* :mod:`dealerbot.group.scheduler`: the group's timetable, deferring jobs into the engine; any
  number of schedulers may run, each firing is deferred once.
* :mod:`dealerbot.group.budget`: a portal account's request budget shared by every worker.
"""
