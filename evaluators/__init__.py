"""Everything that turns a candidate into numbers: accuracy, size, MACs, predicted and measured latency."""
