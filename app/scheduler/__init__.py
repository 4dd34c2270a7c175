"""The scheduler: what runs when (``sweeps``), who may schedule (``leader``), the process (``process``).

- ``sweeps``: the list of sweeps, by name (the contract other modules fill);
- ``registry``: that list as the running app sees it, each sweep's trigger,
  next firing, and its function, imported only when it runs;
- ``runs``: the record of every run (``scheduler_runs``), running one, and
  finding the firings missed while no scheduler ran;
- ``leader``: the election, so that of several ``flask scheduler run``
  processes exactly one schedules (a PostgreSQL advisory lock, or a lease row
  on SQLite);
- ``process``: the BlockingScheduler of ``flask scheduler run``.

A firing only queues work: the worker (``flask worker``) runs the sweep
(``app/tasks/sweeps.py``). Nothing here runs inside a web process.
"""
