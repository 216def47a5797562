"""Model sources: load a trained model and expose its IO signature."""
