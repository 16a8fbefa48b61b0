"""Sampling: energy models (`energy_models`), the samplers (`samplers`), a whole Boltzmann sampling
run (`boltzmann`), and learned reverse diffusion (`denoiser`, `reverse`, `reverse_diffusion`)."""
