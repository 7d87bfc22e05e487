"""mtga as operators meet it: the command line (cli.py and the commands beside
it), the daemon around the pipeline (runtime.py: signals, control socket,
metrics), and the queries of offsets and lag."""
