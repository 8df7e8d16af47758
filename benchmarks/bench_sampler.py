"""Sampler speed on textgen's 2-layer, 512-hidden character LSTM (random weights, 65 characters).

Prints machine, torch and thread count, then, measured side by side in one run (medians of
interleaved repeats, default thread settings unless you set OMP_NUM_THREADS):
  1. tokens/s of `Sampler.generate` (all processors off; it picks the faster CPU recurrent
     kernel by measuring, textgen.kernels) vs a bare loop of model(token, state) +
     torch.multinomial on each kernel: PyTorch's default (oneDNN) and the native one (target:
     Sampler >= 0.9x the faster bare loop);
  2. time per token at prefix lengths 250 / 1000 / 4000: the Sampler (carried state) vs re-running
     the whole prefix every step (naive). The naive cost is measured for a few steps at each
     prefix length and extrapolated: generating L tokens naively costs about L x step(L / 2);
  3. throughput of one batched call with 64 samples vs 64 sequential one-sample calls (target
     >= 10x); the sequential figure is measured on --sequential-runs calls and scaled to 64.

Run: PYTHONPATH=src python benchmarks/bench_sampler.py [--device cpu] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

from textgen.kernels import cpu_kernel
from textgen.model import LSTMLanguageModel, ModelConfig
from textgen.runtime import resolve_device
from textgen.sampler import Sampler
from textgen.tokenizers import CharTokenizer

CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # 65 symbols


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_loop(
    model: LSTMLanguageModel,
    prompt: torch.Tensor,
    steps: int,
    seed: int,
    onednn: bool | None = None,
) -> list[int]:
    """The reference: one model step + torch.multinomial per token, nothing else; on the
    given CPU kernel (None: as PyTorch is configured, oneDNN by default)."""
    generator = torch.Generator(device=prompt.device).manual_seed(seed)
    out = []
    with torch.inference_mode(), cpu_kernel(onednn):
        logits, state = model(prompt, None)
        for _ in range(steps):
            token = torch.multinomial(logits[:, -1].softmax(dim=-1), 1, generator=generator)
            out.append(token)
            logits, state = model(token, state)
    return out


def naive_step(
    model: LSTMLanguageModel, prefix: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    """The naive way: re-run the whole prefix from a fresh state for one new token."""
    with torch.inference_mode():
        logits, _ = model(prefix, None)
        return torch.multinomial(logits[:, -1].softmax(dim=-1), 1, generator=generator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (smoke test)")
    parser.add_argument("--tokens", type=int, default=500, help="tokens for part 1")
    parser.add_argument("--batch-tokens", type=int, default=200, help="tokens per sample, part 3")
    parser.add_argument("--sequential-runs", type=int, default=16, help="measured runs, part 3")
    args = parser.parse_args()
    device = resolve_device(args.device)
    repeats = 2 if args.quick else 3
    torch.set_grad_enabled(False)
    tokenizer = CharTokenizer().fit([CHARS])
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, embed_dim=256, hidden_size=512, num_layers=2
    )
    model = LSTMLanguageModel(config)
    # Random weights could draw the end-of-text token, which ends a sample early: make it
    # unreachable, so every path generates exactly the tokens it is timed for.
    model.head.bias[tokenizer.eos_id] = -1e4  # grad is off (above)
    model = model.to(device).eval()
    sampler = Sampler(model, tokenizer)
    prompt_text = "ROMEO:\n"
    prompt = torch.tensor([tokenizer.encode(prompt_text)], device=device)
    print(
        f"machine={platform.processor() or platform.machine()} torch={torch.__version__} "
        f"device={device} threads={torch.get_num_threads()} model=2x512 LSTM, V={tokenizer.vocab_size}"
    )

    # 1. Sampler vs bare loop ------------------------------------------------------------------
    n = args.tokens
    for onednn in (True, False):
        bare_loop(model, prompt, 20, 0, onednn)
    sampler.generate(prompt_text, max_new_tokens=50, seed=0)  # warm-up (measures the kernels)
    processed = {"temperature": 0.8, "top_k": 20, "top_p": 0.9, "repetition_penalty": 1.1}
    runs: dict[str, list[float]] = {"onednn": [], "native": [], "ours": [], "processed": []}
    for _ in range(repeats):  # interleaved, so machine noise hits all alike
        for name, onednn in (("onednn", True), ("native", False)):
            runs[name].append(
                median_time(lambda o=onednn: bare_loop(model, prompt, n, 1, o), 1, device)
            )
        runs["ours"].append(
            median_time(lambda: sampler.generate(prompt_text, max_new_tokens=n, seed=1), 1, device)
        )
        runs["processed"].append(
            median_time(
                lambda: sampler.generate(prompt_text, max_new_tokens=n, seed=1, **processed),
                1,
                device,
            )
        )
    t_dnn, t_nat, t_ours, t_proc = (
        statistics.median(runs[k]) for k in ("onednn", "native", "ours", "processed")
    )
    t_bare = min(t_dnn, t_nat)
    print(f"\n[1] {n} tokens, one sample, all processors off (median of {repeats}, interleaved)")
    print(f"    bare loop, oneDNN (PyTorch's default)  {n / t_dnn:9.0f} tok/s")
    print(f"    bare loop, native kernel               {n / t_nat:9.0f} tok/s")
    print(
        f"    Sampler                                {n / t_ours:9.0f} tok/s   "
        f"{t_bare / t_ours:.2f}x the faster bare loop (target >= 0.90), "
        f"{t_dnn / t_ours:.1f}x PyTorch's default"
    )
    print(
        f"    Sampler with temperature, top_k, top_p, repetition_penalty: {n / t_proc:9.0f} tok/s"
    )

    # 2. Flat per-token cost vs re-running the prefix -------------------------------------------
    print("\n[2] time per new token at prefix length L (ms)")
    print(
        "    L      Sampler   naive step(L)   ratio   | total for L tokens: Sampler  naive (extrap.)"
    )
    generator = torch.Generator(device=device).manual_seed(0)
    new = 100
    for length in (250, 1000, 4000):
        text = "".join(CHARS[1 + (i * 7) % 64] for i in range(length))
        warm = median_time(
            lambda t=text: sampler.generate(t, max_new_tokens=1, seed=0), repeats, device
        )
        full = median_time(
            lambda t=text: sampler.generate(t, max_new_tokens=new + 1, seed=0), repeats, device
        )
        ours = (full - warm) / new
        prefix = torch.tensor([tokenizer.encode(text)], device=device)
        half = prefix[:, : length // 2]
        naive = median_time(lambda p=prefix: naive_step(model, p, generator), repeats, device)
        naive_half = median_time(lambda p=half: naive_step(model, p, generator), repeats, device)
        total_ours = median_time(
            lambda n=length: sampler.generate("", max_new_tokens=n, seed=0),
            1 if length > 1000 else repeats,
            device,
        )
        print(
            f"    {length:<6} {ours * 1e3:7.3f}   {naive * 1e3:13.3f}   {naive / ours:6.0f}x  |"
            f" {total_ours:8.2f} s  {length * naive_half:8.2f} s"
        )

    # 3. Batched vs sequential -------------------------------------------------------------------
    steps, runs = args.batch_tokens, min(args.sequential_runs, 64)
    t_batch = median_time(
        lambda: sampler.generate(prompt_text, max_new_tokens=steps, num_samples=64, seed=0),
        repeats,
        device,
    )

    def sequential() -> None:
        for i in range(runs):
            sampler.generate(prompt_text, max_new_tokens=steps, seed=i)

    t_seq = median_time(sequential, max(1, repeats // 2), device) * 64 / runs
    print(f"\n[3] 64 samples x {steps} tokens (sequential: {runs} runs measured, scaled to 64)")
    print(f"    batched     {64 * steps / t_batch:9.0f} tok/s  ({t_batch:.2f} s)")
    print(f"    sequential  {64 * steps / t_seq:9.0f} tok/s  ({t_seq:.2f} s)")
    print(f"    speed-up    {t_seq / t_batch:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
