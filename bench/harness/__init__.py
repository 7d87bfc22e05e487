"""What every case runs on: processes measured as a tree (procs), the broker
(kafka), the data made once (data), this tree's or a baseline's code (code), the
programs' RocksDB state (state), the waits on a process and its output (waits),
the cases' registry (registry), the context a case receives (bench.Bench) and the
loop that runs the cases (runner)."""
