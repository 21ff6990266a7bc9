import torch
from torch import Tensor


def cross_entropy(inputs: Tensor, targets: Tensor, ignore_index: int | None = None) -> Tensor:
    """Mean of -log softmax(inputs)[target] over the targets that are not ignore_index."""
    # inputs: (..., vocab), targets: (...)
    if ignore_index is not None:
        keep = targets != ignore_index  # (...)
        inputs, targets = inputs[keep], targets[keep]  # (n, vocab), (n,): ignored rows never indexed
    else:
        inputs, targets = inputs.reshape(-1, inputs.shape[-1]), targets.reshape(-1)
    shifted = inputs - inputs.max(dim=-1, keepdim=True).values  # (n, vocab)
    log_z = torch.log(torch.exp(shifted).sum(dim=-1))  # (n,)
    target_logit = shifted.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (n,)
    return (log_z - target_logit).mean()  # NaN when n == 0, as in torch
