"""Profiles fitted to measurements: host calibration candidates, LiteRT samples, the device shortlist and refits."""
