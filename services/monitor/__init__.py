"""monitor: watches features, scores and labelled outcomes for drift, and asks for retraining.

``windows`` holds the windows and the statistics (PSI, KS, two-proportion z),
``detectors`` the detectors, hysteresis and the retrain policy, ``service`` the wiring.
"""
