"""Training and evaluation of the learned models, apart from serving: the denoiser (`diffusion`),
the NVP forecaster (`nvp`), and the reconstruction baselines (`baselines`) and held-out evaluation
(`evaluation`)."""
