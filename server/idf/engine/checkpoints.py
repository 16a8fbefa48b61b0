"""safetensors checkpoints of the learned models (`denoiser`, `nvp`): weights, string metadata
with a format tag, atomic writes. Training state travels in the same file (shared by the trainers
`diffusion_training` and `nvp_training`): the raw (non-EMA) weights, Adam's moments and the step count travel as extra
tensors beside the EMA weights, so a resumed run continues bit for bit."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from idf.engine.errors import ParameterError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class Saved(Protocol):
    """A loaded learned model: its weights and its checkpoint's metadata (with the training
    `config`)."""

    metadata: dict[str, Any]

    def state_dict(self) -> dict[str, Any]: ...


def optimizer_tensors(
    opt: torch.optim.Adam, model: torch.nn.Module, step: int
) -> dict[str, torch.Tensor]:
    """The raw weights of `model`, Adam's state and the step, as extra checkpoint tensors."""
    out = {f"raw.{k}": v.detach().clone() for k, v in model.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for name, v in st.items():
            out[f"optim.{i}.{name}"] = torch.as_tensor(v).reshape(-1) if name == "step" else v
    out["train.step"] = torch.tensor([step], dtype=torch.int64)
    return out


def resume(
    out: Path,
    config: DataclassInstance,
    saved: Saved,
    tensors: dict[str, torch.Tensor],
    model: torch.nn.Module,
    ema: torch.nn.Module,
    opt: torch.optim.Adam,
) -> int:
    """Continue the run saved in `out` (`saved`, `tensors` as loaded) if it was trained with the
    same configuration (a dataclass; its `steps` may grow); returns the step reached."""
    wanted = json.loads(json.dumps(asdict(config)))  # as stored: tuples become lists
    wanted["steps"] = saved.metadata["config"]["steps"]
    if saved.metadata.get("config") != wanted:
        raise ParameterError(
            "out",
            f"{out} was trained with a different configuration; "
            "use another --out or the same options",
        )
    ema.load_state_dict(saved.state_dict())
    return restore_training(tensors, model, opt)


def restore_training(
    tensors: dict[str, torch.Tensor], model: torch.nn.Module, opt: torch.optim.Adam
) -> int:
    """Load the raw weights and optimizer state written by `optimizer_tensors`; returns the step."""
    model.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("raw.")})
    state = opt.state_dict()
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state["state"].setdefault(int(i), {})[name] = v.reshape(()) if name == "step" else v
    opt.load_state_dict(state)
    return int(tensors["train.step"][0])


def write(
    path: Path,
    fmt: str,
    meta: dict[str, str],
    model: torch.nn.Module,
    tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write `model`'s weights as `model.*` (plus any `tensors`) with string metadata and the
    format tag; atomically: a crash never leaves half a checkpoint under the real name."""
    state = {f"model.{k}": v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    state.update({k: v.contiguous().cpu() for k, v in (tensors or {}).items()})
    tmp = Path(str(path) + ".tmp")
    save_file(state, str(tmp), metadata={"format": fmt, **meta})
    tmp.replace(path)


def read_metadata(path: Path, fmt: str) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != fmt:
        raise ValueError(f"{path} is not an {fmt} checkpoint (format={meta.get('format')!r})")
    return meta


def load_into(
    path: Path, model: torch.nn.Module, device: str | torch.device = "cpu"
) -> dict[str, torch.Tensor]:
    """Load the `model.*` weights into `model` (moved to `device`, eval mode); returns the other tensors."""
    tensors = load_file(str(path), device="cpu")
    model.load_state_dict(
        {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    )
    model.to(device).eval()
    return {k: v for k, v in tensors.items() if not k.startswith("model.")}


def optimizer_step(
    opt: torch.optim.Adam,
    loss: torch.Tensor,
    model: torch.nn.Module,
    ema: torch.nn.Module,
    learning_rate: float,
    decay: float,
) -> float:
    """One Adam step at `learning_rate` and the EMA update ema ← decay·ema + (1 − decay)·model;
    returns the loss as a float."""
    for g in opt.param_groups:
        g["lr"] = learning_rate
    opt.zero_grad(set_to_none=True)
    torch.autograd.backward(loss)
    opt.step()
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.lerp_(pm, 1 - decay)
    return float(loss.detach())


def deterministic(threads: int = 0) -> None:
    """What makes a training run repeatable bit for bit: deterministic kernels (without filling
    fresh memory, which costs ~40% of a CPU step and buys nothing here), and `threads` CPU threads
    when non-zero."""
    if threads:
        torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    # a module attribute torch sets through a module subclass, which type checkers do not see
    setattr(torch.utils.deterministic, "fill_uninitialized_memory", False)
