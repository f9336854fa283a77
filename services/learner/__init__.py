"""learner: the single writer of models; learns online from delayed labels and publishes versions."""
