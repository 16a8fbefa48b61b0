"""Proof rules: validation and conservation metrics (`metrics`), the policies that turn them into
verdicts and rewards (`policies`), and the signed record of a check (`records`)."""
