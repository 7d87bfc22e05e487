"""The benchmarks of shipper and mtga against their references: ``python bench/run.py``.

harness/ runs and measures processes (the broker, the data, the code of this
tree or of a baseline revision), cases/ declares the cases (one ``@case`` each),
report.py prints and saves what they measured.
"""
