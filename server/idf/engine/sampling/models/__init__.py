"""The energy models `Sample` serves, one file each (an `EnergyModel` and its `Energy`);
`idf.engine.sampling.energy_models` registers them."""
