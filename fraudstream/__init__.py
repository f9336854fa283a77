"""The tools people run by hand: the CLI, the local stack, the demo, the simulator, replay,
evaluation, the bench and the terminal console. Nothing here runs in production; it imports
``services`` and ``shared``, never the other way round."""
