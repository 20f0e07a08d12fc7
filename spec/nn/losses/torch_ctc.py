# PyTorch's reference for spec/nn/losses/ctc.spec.ts: reads cases (JSON) on stdin, prints for each
# torch.nn.functional.ctc_loss of log_softmax(logits) in float64 and the gradient on the logits.
import json
import sys

import torch
import torch.nn.functional as F

def plain(xs):  # JSON has no Infinity or NaN: send those as strings
    return [x if x == x and abs(x) != float("inf") else str(x) for x in xs]


out = []
for c in json.load(sys.stdin):
    B, T, V = c["shape"]
    logits = torch.tensor(c["logits"], dtype=torch.float64).reshape(B, T, V).requires_grad_(True)
    targets = torch.tensor(c["targets"], dtype=torch.long).reshape(B, -1)
    lp = F.log_softmax(logits, dim=-1).transpose(0, 1)  # torch wants [T, B, V]
    loss = F.ctc_loss(lp, targets, c["inputLengths"], c["targetLengths"], blank=c["blank"],
                      reduction=c["reduction"], zero_infinity=c["zeroInfinity"])
    loss.sum().backward()
    out.append({"loss": plain(loss.detach().reshape(-1).tolist()), "grad": plain(logits.grad.reshape(-1).tolist())})
json.dump(out, sys.stdout)
