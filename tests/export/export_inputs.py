"""Real inputs for each exported graph, from the data beside the checkout: MNIST digits,
tinyshakespeare lines, UCI review sentences, Multi30k sentences, CIFAR-10 photographs.

Every batch size and length here differs from the graphs' export examples (batch 2,
length 5 or 4), so matching on them shows that those sizes stayed dynamic."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from striate.data.sequence_batches import pad_sequences
from striate.export.graphs import TaskGraphs


def _state(state) -> Tensor:
    return torch.stack(list(state)) if isinstance(state, tuple) else state.unsqueeze(0)


def real_inputs(found: TaskGraphs, predictor, data: Path) -> dict[str, tuple[Tensor, ...]]:
    """graph name → a batch of real inputs for it."""
    kind = found.kind
    if kind == "image-classification":
        from striate.data.sources.images import load_image_data

        digits = load_image_data(
            "mnist", "test", data_dir=data, image_size=predictor.size, limit=5, download=False
        )
        return {"model": (digits.images.float() / 255,)}
    if kind == "text-generation":
        play = (data / "tinyshakespeare" / "input.txt").read_text()[:4000]  # the run's corpus
        chars = [predictor.vocab.encode(play[start : start + 9]) for start in (0, 99, 500, 2222)]
        prefixes = torch.stack([c[:8] for c in chars])  # (4, 8) real text read so far
        with torch.no_grad():
            _, state = predictor.model(prefixes)
        return {"step": (torch.stack([c[8] for c in chars]), _state(state))}
    if kind == "sentiment":
        from striate.apps.sentiment import encode_texts
        from striate.data.sources.sentiment import load_sentiment

        texts = load_sentiment("uci", "test", data, download=False).texts[:4]
        ids, lengths = pad_sequences(encode_texts(texts, predictor.vocab), predictor.model.pad_id)
        return {"model": (ids, lengths)}
    if kind == "translation":
        from striate.data.sources.parallel import load_parallel

        tr = predictor.translator
        pairs = load_parallel("multi30k", "test", "en", "de", data_dir=data, download=False)
        src = [tr.preprocessing.src_ids(tr.src_vocab, s) for s in pairs.source[:3]]
        ids, lengths = pad_sequences(src, tr.model.pad_id)
        encoder = next(g for g in found.graphs if g.name == "encoder")
        with torch.no_grad():
            memory, mask, third, state = encoder.reference(ids, lengths)
        token = torch.full((3,), tr.tgt_vocab.bos_id)
        rest = (memory, mask, third) if tr.model.attention is not None else (third,)
        return {"encoder": (ids, lengths), "decoder_step": (token, state, *rest)}
    if kind == "image-captioning":
        from striate.predict.captioning import read_images

        folder = data / "cifar10-jpeg" / "test"
        photos = [folder / c / "0000.jpg" for c in ("airplane", "bird", "cat", "ship")]
        images = read_images(photos, predictor.size).float() / 255
        encoder = next(g for g in found.graphs if g.name == "encoder")
        with torch.no_grad():
            encoded = encoder.reference(images)
        token = torch.full((4,), predictor.vocab.bos_id)
        return {"encoder": (images,), "decoder_step": (token, encoded[-1], *encoded[:-1])}
    if kind == "video-classification":
        from striate.data.sources.images import load_image_data

        digits = load_image_data(
            "mnist", "test", data_dir=data, image_size=predictor.size, limit=21, download=False
        )
        return {
            "model": (digits.images.float().div(255).reshape(3, 7, 1, *digits.images.shape[2:]),)
        }
    raise AssertionError(f"no real inputs for {kind}")
