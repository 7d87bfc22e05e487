"""mtga's stages: Kafka -> transform -> LogBus files | failure queue, with the
offsets checkpointed. service.py's ``Service`` is the loop that runs them
(its docstring maps each stage to its module); each stage owns its state."""
