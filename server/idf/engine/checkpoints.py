"""Training state in safetensors checkpoints, shared by the trainers (`diffusion_training`,
`nvp_training`): the raw (non-EMA) weights, Adam's moments and the step count travel as extra
tensors beside the EMA weights, so a resumed run continues bit for bit."""

from __future__ import annotations

import torch


def optimizer_tensors(opt: torch.optim.Adam, raw: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
    out = {f"raw.{k}": v for k, v in raw.items()}
    for i, st in opt.state_dict()["state"].items():
        for name, v in st.items():
            out[f"optim.{i}.{name}"] = torch.as_tensor(v).reshape(-1) if name == "step" else v
    out["train.step"] = torch.tensor([step], dtype=torch.int64)
    return out


def restore_training(tensors: dict[str, torch.Tensor], model: torch.nn.Module, opt: torch.optim.Adam) -> int:
    """Load the raw weights and optimizer state written by `optimizer_tensors`; returns the step."""
    model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("raw.")})
    state = opt.state_dict()
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state["state"].setdefault(int(i), {})[name] = v.reshape(()) if name == "step" else v
    opt.load_state_dict(state)
    return int(tensors["train.step"][0])
