"""The parent process's side of a session: the servers, the worker processes, what they report,
the timeline, and the ``Session`` that runs one population of phones through a mode."""
