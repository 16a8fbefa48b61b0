"""The domain: energy models, samplers, forecasters, proof and market rules. Arrays and plain
dataclasses in and out; no transport types."""
