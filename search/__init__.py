"""Hardware-aware compression search: CLI, study lifecycle, Ray execution, Pareto front, export."""
