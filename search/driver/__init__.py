"""The driver side of a study: inputs, preparation, study setup, the Ray trial loop, and the commands that run studies
(run, compare, sensitivity). What runs inside a Ray task is ``search.worker``."""
