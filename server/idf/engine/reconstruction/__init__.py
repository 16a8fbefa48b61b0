"""Field reconstruction from sparse observations with uncertainty (`posterior`)."""
