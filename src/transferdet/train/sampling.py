"""Seeded data order and augmentation that a resumed run reproduces exactly.

The sample stream is a concatenation of per-epoch permutations, each drawn from ``(seed, epoch)``;
batch ``i`` is positions ``i*B .. (i+1)*B`` of that stream, so a run resumed at iteration ``i``
needs nothing but ``i``. Each drawn sample carries its position in the stream, and its
augmentation is seeded with ``(seed, position)``, so it does not depend on which worker process
loads it or in what order.

With aspect-ratio grouping (as detectron2's ``AspectRatioGroupedDataset``: landscape and portrait
images in separate batches, so padding to the largest image in a batch wastes little), the stream
is dealt into one bucket per group and a batch is emitted whenever a bucket is full; the batch
sequence is still a pure function of ``(seed, groups)``, regenerated from the start on resume.
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
        self,
        size: int,
        batch_size: int,
        seed: int,
        start: int,
        stop: int,
        rank: int = 0,
        world: int = 1,
        groups: np.ndarray | None = None,
    ) -> None:
        self.size, self.batch_size, self.seed, self.start, self.stop = size, batch_size, seed, start, stop
        self.rank, self.world = rank, world
        # one group only is the plain stream
        self.groups = groups if groups is not None and len(np.unique(groups)) > 1 else None

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def _positions(self) -> Iterator[tuple[int, int]]:
        """``(dataset index, stream position)`` in stream order, forever."""
        epoch = 0
        while True:
            for offset, index in enumerate(epoch_order(self.size, self.seed, epoch)):
                yield int(index), epoch * self.size + offset
            epoch += 1

    def _grouped(self) -> Iterator[list[tuple[int, int]]]:
        """Global batches (``batch_size * world`` samples) of one group each, in emission order."""
        buckets: dict[int, list[tuple[int, int]]] = {}
        full = self.batch_size * self.world
        for index, position in self._positions():
            bucket = buckets.setdefault(int(self.groups[index]), [])
            bucket.append((index, position))
            if len(bucket) == full:
                yield bucket[:]
                bucket.clear()

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        if self.groups is not None:
            mine = slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
            for iteration, batch in enumerate(self._grouped()):
                if iteration >= self.stop:
                    return
                if iteration >= self.start:
                    yield batch[mine]
            return
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
