"""The measurement protocol: the axes and questions (the spec), profiles, the reading recipe, calibration,
the baseline fingerprint and the run store's layout."""
