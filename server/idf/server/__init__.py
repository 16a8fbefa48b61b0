"""Transports and operations: gRPC servicers, errors, config, logs, wiring."""
