"""Generate text from an exported ONNX model with onnxruntime and NumPy alone: no torch, no textgen.

First export a trained run (needs `pip install 'textgen-lstm[export]'`):

    textgen export runs/shakespeare --format onnx --out model.onnx

which writes model.onnx and model.tokenizer.json. Then, on any machine with onnxruntime:

    python examples/serve_onnx.py model.onnx --prompt "Romeo." --length 300 --temperature 0.8

The loop is the one textgen's Sampler runs: the model reads the whole prompt once to warm its
recurrent state, then produces one token per call, fed back with the state it returned. This
script reads character tokenizers (textgen's default); word and BPE tokenizers need their
encoders, which textgen itself provides.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

#: textgen's end-of-text token (the last entry of a char vocabulary): a sample ends there.
END_OF_TEXT = "<|endoftext|>"


def load_char_vocab(model_path: Path) -> list[str]:
    """The vocabulary (id -> character) written by `textgen export` beside the model."""
    tokenizer_file = model_path.with_name(model_path.stem + ".tokenizer.json")
    spec = json.loads(tokenizer_file.read_text(encoding="utf-8"))
    if spec["type"] != "char":
        sys.exit(f"{tokenizer_file}: this example reads char tokenizers, not {spec['type']!r}")
    return list(spec["vocab"])


def sample(probs: np.ndarray, rng: np.random.Generator) -> int:
    """Draw one id from a probability vector (V,)."""
    return int(rng.choice(len(probs), p=probs))


def generate(
    session: ort.InferenceSession,
    vocab: list[str],
    prompt: str,
    length: int,
    temperature: float,
    seed: int,
) -> str:
    index = {ch: i for i, ch in enumerate(vocab)}
    unknown = sorted({ch for ch in prompt if ch not in index})
    if unknown:
        sys.exit(f"prompt characters not in the vocabulary: {unknown}")
    # An empty prompt starts from a newline, as textgen's Sampler does.
    ids = [index[ch] for ch in prompt] or [index.get("\n", 0)]
    # State inputs are every input after "ids": (h, c) for an LSTM, (h,) for a GRU, each
    # (layers, batch, hidden); a new sequence starts from zeros.
    state_inputs = session.get_inputs()[1:]
    layers, hidden = state_inputs[0].shape[0], state_inputs[0].shape[2]
    state = [np.zeros((layers, 1, hidden), dtype=np.float32) for _ in state_inputs]
    rng = np.random.default_rng(seed)
    feed = np.array([ids], dtype=np.int64)  # (1, T): the whole prompt, once
    pieces = []
    for _ in range(length):
        logits, *state = session.run(
            None, {"ids": feed, **{i.name: s for i, s in zip(state_inputs, state, strict=True)}}
        )
        scores = logits[0, -1].astype(np.float64) / temperature
        probs = np.exp(scores - scores.max())
        next_id = sample(probs / probs.sum(), rng)
        if vocab[next_id] == END_OF_TEXT:  # the model ended the text, as textgen's Sampler stops
            break
        pieces.append(vocab[next_id])
        feed = np.array([[next_id]], dtype=np.int64)  # (1, 1): one step, carrying the state
    return "".join(pieces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="an .onnx file written by textgen export")
    parser.add_argument("--prompt", default="", help="text to continue")
    parser.add_argument("--length", type=int, default=200, help="characters to generate")
    parser.add_argument("--temperature", type=float, default=0.8, help="> 0; lower is safer")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    args = parser.parse_args()
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    vocab = load_char_vocab(args.model)
    text = generate(session, vocab, args.prompt, args.length, args.temperature, args.seed)
    print(args.prompt + text)


if __name__ == "__main__":
    main()
