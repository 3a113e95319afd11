"""Fine-tuning: recipes, the training engine with exact resume, evaluation."""
