"""The encoder-loss protocol lives in ``ertrl_bench.components``; re-exported here.

Each train step the training loop (``ertrl_bench.training``) does, for the sampled meta-batch::

    z_i, z = encoder(ctx)                                    # [M, C, L], [M, L]
    batch = StepBatch(ctx, rl, z_i, z, encode)
    for loss in method's encoder losses: logs |= loss.update(batch.detached())
    total = sum(loss.encoder_loss(batch)[0] for each loss)  # -> encoder (+ joint params) step
"""

from ertrl_bench.components import EncoderLoss, StepBatch

__all__ = ["EncoderLoss", "StepBatch"]
