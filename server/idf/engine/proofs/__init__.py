"""Proof rules: validation and conservation metrics (`metrics`) and the policies that turn them
into verdicts (`policies`)."""
