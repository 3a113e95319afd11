"""Seeded data order and augmentation that a resumed run reproduces exactly.

The sample stream is a concatenation of per-epoch permutations, each drawn from ``(seed, epoch)``;
batch ``i`` is positions ``i*B .. (i+1)*B`` of that stream, so a run resumed at iteration ``i``
needs nothing but ``i``. Each drawn sample carries its position in the stream, and its
augmentation is seeded with ``(seed, position)``, so it does not depend on which worker process
loads it or in what order.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from transferdet.data.transforms import TorchDetectionDataset


def epoch_order(size: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(size)


class StreamBatchSampler(torch.utils.data.Sampler):
    """Batches of ``(dataset index, stream position)`` for iterations ``start .. stop - 1``.

    Under data parallelism each iteration consumes ``batch_size * world`` stream positions and
    process ``rank`` takes its own ``batch_size`` of them.
    """

    def __init__(
        self, size: int, batch_size: int, seed: int, start: int, stop: int, rank: int = 0, world: int = 1
    ) -> None:
        self.size, self.batch_size, self.seed, self.start, self.stop = size, batch_size, seed, start, stop
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        cached: dict[int, np.ndarray] = {}
        for iteration in range(self.start, self.stop):
            batch = []
            first = (iteration * self.world + self.rank) * self.batch_size
            for position in range(first, first + self.batch_size):
                epoch, offset = divmod(position, self.size)
                if epoch not in cached:
                    cached.clear()
                    cached[epoch] = epoch_order(self.size, self.seed, epoch)
                batch.append((int(cached[epoch][offset]), position))
            yield batch


class SeededAugmentation(torch.utils.data.Dataset):
    """Wraps a detection dataset so that item ``(index, position)`` is augmented with a random
    state seeded by ``(seed, position)`` (and the caller's random state is left untouched)."""

    def __init__(self, dataset: TorchDetectionDataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: tuple[int, int]):  # noqa: ANN204
        index, position = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + position)
            return self.dataset[index]
