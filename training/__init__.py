"""Training utilities: synthetic task generation for episodic in-context training."""
