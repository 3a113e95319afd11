"""`transferdet select`: rank the candidates, then race the survivors (successive halving)."""
