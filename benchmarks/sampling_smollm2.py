"""Sampling throughput of SmolLM2-135M: our jit-compiled KV-cache sampler vs transformers.generate.

    python benchmarks/sampling_smollm2.py [--batch 8] [--prompt-length 64] [--new-tokens 64] [--repeats 5]
                                          [--torch-threads N] [--decode-layers auto|scan|unrolled]

Both sides use the same dequantized GGUF weights in float32 on the CPU and generate exactly
``--new-tokens`` tokens per prompt (no EOS stop) after prompts of ``--prompt-length`` tokens.
Runs alternate (ours, torch, ours, torch, ...) so that load from other processes on the machine
hits both alike; compilation and torch warm-up are excluded. Prints new tokens per second
(``batch * new_tokens / seconds``, median over repeats) for each, the median of the per-pair
ratios ours / torch, our first call's time (compilation included), and for greedy decoding the
fraction of tokens on which the two agree. ``--decode-layers`` picks how our decode steps run the
layers (``SamplerConfig.decode_layers``).

Decoding is memory-bound: each decode step reads every weight and the KV cache once
(``alignment.models.costs.decode_step_bytes``, the whole cache of P + N slots, as the sampler's
attention reads it). Both sides' bytes per second over new tokens (decode steps per second x
bytes per step; the prefill is in the time, so this is a lower bound) are printed next to the
memory bandwidth: the accelerator's data-sheet figure (``costs.device_peak``) or, on a CPU, a
measured one (a 256 MB NumPy copy: read + write bytes over its time).

The machine is shared: torch's OpenMP threads slow down sharply (10x and more was seen) when
another process takes a core, far more than XLA's, so compare the per-pair ratios and read the
quietest pair as the fair one; ``--torch-threads 1`` makes torch less sensitive to that.

It takes about five minutes on a 2-core CPU with the defaults: greedy and sampled decoding, six
runs of each framework apiece, plus loading and compiling. Without torch (the ``[parity]``
extra) only ``--help`` works.
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import numpy as np

from alignment.models import costs
from alignment.models.config import DecoderConfig
from alignment.models.decoder import Decoder
from alignment.models.loaders.convert import load_params, params_from_hf
from alignment.models.loaders.gguf import config_from_gguf, gguf_metadata, hf_tensors_from_gguf, open_gguf, smollm2_gguf_path
from alignment.models.tokenizer import Tokenizer
from alignment.sampling import Sampler, SamplerConfig, SamplingParams

from flax import nnx

TEXT = (
    "The history of astronomy spans thousands of years. Early observers tracked the motions of the "
    "Sun, the Moon and the planets, built calendars around them and tried to predict eclipses. "
    "Later, telescopes revealed moons around Jupiter, the phases of Venus and countless faint stars."
)


def load_both() -> tuple[Decoder, transformers.LlamaForCausalLM, Tokenizer]:
    """The JAX decoder and a torch ``LlamaForCausalLM`` holding the same dequantized weights."""
    import torch
    import transformers

    path = smollm2_gguf_path()
    reader = open_gguf(path)
    metadata = gguf_metadata(reader)
    config = config_from_gguf(metadata, str(path), tie_embeddings=True)
    tensors = hf_tensors_from_gguf(reader, config)
    ours = load_params(nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0))), params_from_hf(tensors, config, str(path)), str(path))
    torch_model = transformers.LlamaForCausalLM(hf_config(config)).eval()
    missing, unexpected = torch_model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=False)
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise ValueError(f"torch weights do not fit: missing {missing}, unexpected {unexpected}")
    torch_model.tie_weights()
    return ours, torch_model, Tokenizer.from_gguf(metadata, str(path))


def hf_config(c: DecoderConfig) -> transformers.LlamaConfig:
    import transformers

    return transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.embed_dim, intermediate_size=c.mlp_dim,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads, num_key_value_heads=c.num_kv_heads,
        head_dim=c.head_dim, rope_theta=c.rope_theta, rms_norm_eps=c.norm_eps,
        tie_word_embeddings=c.tie_embeddings, max_position_embeddings=c.max_length, torch_dtype="float32",
    )


def prompts(tokenizer: Tokenizer, batch: int, length: int) -> np.ndarray:
    """``[batch, length]`` token ids: the same text, each row starting ``b`` tokens later."""
    ids = tokenizer.encode(TEXT * 4)
    if len(ids) < length + batch:
        raise ValueError(f"the benchmark text has {len(ids)} tokens; need {length + batch}")
    return np.stack([ids[b : b + length] for b in range(batch)]).astype(np.int32)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompt-length", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    parser.add_argument("--decode-layers", default="auto", choices=("auto", "scan", "unrolled"))
    args = parser.parse_args()
    import torch  # after parsing: --help works without the [parity] extra
    import transformers

    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)

    ours, torch_model, tokenizer = load_both()
    tokens = prompts(tokenizer, args.batch, args.prompt_length)
    new = args.batch * args.new_tokens
    parameter_bytes = sum(x.nbytes for x in jax.tree.leaves(nnx.state(ours)))
    step_bytes = costs.decode_step_bytes(ours.config, args.batch, args.prompt_length + args.new_tokens, parameter_bytes)
    peak = costs.device_peak()
    bandwidth, source = (peak[1], jax.devices()[0].device_kind) if peak else (copy_bandwidth(), "measured NumPy copy")
    print(f"decode step reads {step_bytes / 1e6:.0f} MB (weights {parameter_bytes / 1e6:.0f} MB + KV cache); "
          f"memory bandwidth {bandwidth / 1e9:.1f} GB/s ({source})")
    print(f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"transformers {transformers.__version__}; batch {args.batch}, prompt {args.prompt_length}, {args.new_tokens} new tokens, "
          f"decode_layers={args.decode_layers}")

    modes = {
        "greedy": (SamplingParams(temperature=0.0), dict(do_sample=False)),
        "T=0.7, top-k 50, top-p 0.95": (SamplingParams(temperature=0.7, top_k=50, top_p=0.95), dict(do_sample=True, temperature=0.7, top_k=50, top_p=0.95)),
    }
    for name, (params, torch_kwargs) in modes.items():
        sampler = Sampler(SamplerConfig(
            max_new_tokens=args.new_tokens, sampling=params, prompt_buckets=(args.prompt_length,), decode_layers=args.decode_layers,
        ))

        def run_ours(seed):
            return np.asarray(sampler(ours, tokens, jax.random.key(seed)).response_tokens)

        def run_torch(seed):
            torch.manual_seed(seed)
            with torch.no_grad():
                out = torch_model.generate(
                    torch.from_numpy(tokens).long(), attention_mask=torch.ones(tokens.shape, dtype=torch.long),
                    max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, pad_token_id=0, **torch_kwargs,
                )
            return out[:, args.prompt_length :].numpy()

        first_call = time.perf_counter()
        ours_tokens = run_ours(0)  # compiles
        first_call = time.perf_counter() - first_call
        torch_tokens = run_torch(0)  # warm-up
        ours_s, torch_s = [], []
        for seed in range(args.repeats):
            ours_s.append(_seconds(run_ours, seed))
            torch_s.append(_seconds(run_torch, seed))
        ratios = [t / o for o, t in zip(ours_s, torch_s)]
        print(f"\n[{name}]")
        print(f"  ours (jax, KV cache, jit): {new / statistics.median(ours_s):7.1f} new tokens/s   (runs: {_fmt(ours_s)} s; "
              f"first call {first_call:.1f} s)")
        print(f"  transformers.generate    : {new / statistics.median(torch_s):7.1f} new tokens/s   (runs: {_fmt(torch_s)} s)")
        print(f"  speed-up ours / torch    : {statistics.median(ratios):.2f}x median of paired runs ({_fmt(ratios)})")
        for side, seconds in (("ours", ours_s), ("torch", torch_s)):
            rate = args.new_tokens * step_bytes / statistics.median(seconds)
            print(f"  decode bandwidth, {side:<5}: {rate / 1e9:6.1f} GB/s, {rate / bandwidth:.0%} of the memory bandwidth")
        if params.is_greedy:
            print(f"  greedy tokens identical  : {np.mean(ours_tokens == torch_tokens):.1%}")
            print(f"  sample: {tokenizer.decode(ours_tokens[0].tolist())!r}")


def copy_bandwidth(megabytes: int = 256, repeats: int = 5) -> float:
    """Bytes per second of the fastest of ``repeats`` NumPy copies of ``megabytes`` (read + write)."""
    source = np.ones(megabytes * 2**20 // 8)
    target = np.empty_like(source)
    best = min(_seconds(lambda _: np.copyto(target, source), 0) for _ in range(repeats))
    return 2 * source.nbytes / best


def _seconds(fn, seed) -> float:
    start = time.perf_counter()
    fn(seed)
    return time.perf_counter() - start


def _fmt(times) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    main()
