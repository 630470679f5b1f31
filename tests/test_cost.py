"""The cost model against the real thing: transformers' modules, torch's FLOP counter, saved files."""

from __future__ import annotations

import io
import math

import pytest

from ablate.cost import (
    DEFAULT_MFU,
    GPUS,
    MODEL_SHAPES,
    MSMARCO_ATTENTION_CONTEXT,
    MSMARCO_TOKENS_PER_TRIPLET,
    ModelShape,
    attention_context,
    checkpoint_bytes,
    encoding_flops,
    forward_flops_per_token,
    get_gpu,
    gpu_hours,
    shape_from_config,
    training_flops,
    training_state_bytes,
)

BASE = MODEL_SHAPES["answerdotai/ModernBERT-base"]
LARGE = MODEL_SHAPES["answerdotai/ModernBERT-large"]

# Small configs that exercise every switch the formula has (biases, untied decoder, attention pattern).
TINY_CONFIGS = {
    "tiny-defaults": dict(vocab_size=101, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                          num_attention_heads=2),
    "tiny-all-biases": dict(vocab_size=77, hidden_size=32, intermediate_size=80, num_hidden_layers=4,
                            num_attention_heads=4, attention_bias=True, mlp_bias=True, norm_bias=True,
                            classifier_bias=True, decoder_bias=False, tie_word_embeddings=False),
    "tiny-one-layer-all-global": dict(vocab_size=50, hidden_size=48, intermediate_size=48, num_hidden_layers=1,
                                      num_attention_heads=3, global_attn_every_n_layers=1),
}
REAL_SHAPES = {
    "base": dict(vocab_size=50368, hidden_size=768, intermediate_size=1152, num_hidden_layers=22,
                 num_attention_heads=12, max_position_embeddings=8192),
    "large": dict(vocab_size=50368, hidden_size=1024, intermediate_size=2624, num_hidden_layers=28,
                  num_attention_heads=16, max_position_embeddings=8192),
}


def _config(**kwargs):
    from transformers import ModernBertConfig

    # Special-token ids inside the (tiny) vocabulary, else the embedding's padding_idx is out of range.
    return ModernBertConfig(pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2,
                            **kwargs)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", [*TINY_CONFIGS, *REAL_SHAPES])
def test_analytic_parameter_count_equals_the_real_modules(name):
    import torch
    from transformers import ModernBertForMaskedLM, ModernBertModel

    config = _config(**{**TINY_CONFIGS, **REAL_SHAPES}[name])
    shape = shape_from_config(config.to_dict(), name)
    with torch.device("meta"):  # counts without allocating base/large weights
        encoder, masked_lm = ModernBertModel(config), ModernBertForMaskedLM(config)
    assert shape.params == _count(encoder)
    assert shape.params_with_mlm_head == _count(masked_lm)
    assert shape.non_embedding_params == _count(encoder) - encoder.embeddings.tok_embeddings.weight.numel()


def test_released_shapes_give_the_published_totals_and_match_their_config():
    assert BASE.params_with_mlm_head == 149_655_232
    assert LARGE.params_with_mlm_head == 395_881_664
    for key, shape in (("base", BASE), ("large", LARGE)):
        from_config = shape_from_config(_config(**REAL_SHAPES[key]).to_dict(), shape.name)
        assert from_config == shape


def test_hub_style_config_json_reads_the_attention_pattern():
    hub = {"num_hidden_layers": 22, "hidden_size": 768, "intermediate_size": 1152, "vocab_size": 50368,
           "max_position_embeddings": 8192, "global_attn_every_n_layers": 3, "local_attention": 128,
           "norm_bias": False, "mlp_bias": False, "attention_bias": False}
    shape = shape_from_config(hub, "answerdotai/ModernBERT-base")
    assert shape == BASE
    assert (shape.global_layers, shape.local_layers) == (8, 14)  # layers 0, 3, ..., 21 are global


def test_irregular_layer_types_are_refused():
    config = {"num_hidden_layers": 4, "hidden_size": 8, "intermediate_size": 8, "vocab_size": 10,
              "max_position_embeddings": 16,
              "layer_types": ["full_attention", "sliding_attention", "full_attention", "full_attention"]}
    with pytest.raises(ValueError, match="layer_types"):
        shape_from_config(config)


def test_forward_flops_match_torch_flop_counter_on_a_real_forward():
    """2N + 4 L d T per token is what the matmuls of an unpadded, all-global forward pass really cost."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import ModernBertModel

    config = _config(vocab_size=500, hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                     num_attention_heads=4, global_attn_every_n_layers=1, attn_implementation="eager")
    shape = shape_from_config(config.to_dict())
    model = ModernBertModel(config).eval()
    batch, length = 3, 40
    ids = torch.randint(5, 500, (batch, length))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    predicted = batch * length * forward_flops_per_token(shape, length)
    # The model also counts LayerNorm weights as 2 FLOPs each; the counter counts only matmuls.
    assert counter.get_total_flops() == pytest.approx(predicted, rel=0.01)


def test_cached_mnrl_step_costs_four_forward_passes(tmp_path):
    """One real CachedMNRL forward + backward, measured by torch's FLOP counter, is training_flops."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import CachedMultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import ModernBertModel

    from ablate.model import train_wordpiece

    words = [f"w{i}" for i in range(200)]
    tokenizer = train_wordpiece([" ".join(words)], 512)
    config = _config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                     num_attention_heads=4, global_attn_every_n_layers=1)
    torch.manual_seed(0)
    ModernBertModel(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    transformer = Transformer(str(tmp_path), model_kwargs={"attn_implementation": "eager"})
    model = SentenceTransformer(modules=[transformer, Pooling(64, "mean")], device="cpu")
    shape = shape_from_config(transformer.auto_model.config.to_dict())

    # Every text of a column has the same length, so nothing is padded: (words + [CLS] + [SEP]) tokens.
    batch, lengths = 8, (6, 20, 20)
    columns = [[" ".join(words[(r * 7 + c * 31 + k) % 200] for k in range(n)) for r in range(batch)]
               for c, n in enumerate(lengths)]
    features = [model.preprocess(texts) for texts in columns]
    assert [int(f["attention_mask"].sum()) for f in features] == [batch * (n + 2) for n in lengths]
    tokens = [n + 2 for n in lengths]

    loss_fn = CachedMultipleNegativesRankingLoss(model, mini_batch_size=4)
    with FlopCounterMode(display=False) as counter:
        loss_fn(features, None).backward()
    predicted = training_flops(shape, batch, sum(tokens), attention_context(tokens))
    # Not modelled: LayerNorm weights (counted as 2 FLOPs each) and the loss's 8 x 24 similarity matrix.
    assert counter.get_total_flops() == pytest.approx(predicted, rel=0.02)


def test_calibration_point_reproduces_one_hour_on_an_rtx4090():
    flops = training_flops(BASE, 1_250_000, MSMARCO_TOKENS_PER_TRIPLET, MSMARCO_ATTENTION_CONTEXT)
    assert flops == pytest.approx(1.9192e17, rel=1e-4)  # the arithmetic written next to DEFAULT_MFU
    assert gpu_hours(flops, get_gpu("RTX4090"), DEFAULT_MFU) == pytest.approx(1.0, rel=0.05)


def test_flops_are_linear_in_examples_and_tokens():
    one = training_flops(BASE, 1000, 170, 76)
    assert training_flops(BASE, 2000, 170, 76) == pytest.approx(2 * one, rel=1e-12)
    assert training_flops(BASE, 1000, 340, 76) == pytest.approx(2 * one, rel=1e-12)
    assert encoding_flops(BASE, 2000, 80, 80) == pytest.approx(2 * encoding_flops(BASE, 1000, 80, 80), rel=1e-12)


def test_training_costs_four_times_encoding_the_same_tokens():
    assert training_flops(LARGE, 512, 170, 76) == pytest.approx(4 * encoding_flops(LARGE, 512, 170, 76), rel=1e-12)


def test_longer_context_costs_more_and_only_global_layers_grow_past_the_window():
    per_token = [forward_flops_per_token(BASE, t) for t in (16, 64, 128, 512, 8192)]
    assert per_token == sorted(per_token) and len(set(per_token)) == len(per_token)
    below = forward_flops_per_token(BASE, 101) - forward_flops_per_token(BASE, 100)
    above = forward_flops_per_token(BASE, 1001) - forward_flops_per_token(BASE, 1000)
    assert below == pytest.approx(4 * 768 * 22)
    assert above == pytest.approx(4 * 768 * 8)
    assert forward_flops_per_token(BASE, 1) == pytest.approx(2 * 110_331_648 + 4 * 768 * 22)


def test_attention_context_is_the_token_weighted_mean_length():
    assert attention_context([10, 80, 80]) == pytest.approx(12_900 / 170)
    assert attention_context([64] * 5) == 64
    with pytest.raises(ValueError):
        attention_context([])


def test_gpu_lookup_is_case_insensitive_and_names_the_allowed_gpus():
    assert get_gpu("h200") is get_gpu("H200") is get_gpu(" H200 ")
    assert get_gpu("rtx4090").peak_bf16_tflops == 165.2
    assert get_gpu("H100").peak_bf16_tflops == pytest.approx(989.4)
    assert get_gpu("A100-80GB").peak_bf16_tflops == 312
    for required in ("h200", "h100", "a100-80gb", "a100-40gb", "l40s", "rtx4090", "l4", "a10g"):
        assert required in GPUS
    with pytest.raises(ValueError) as error:
        get_gpu("TPUv5")
    assert "TPUv5" in str(error.value) and "H200" in str(error.value) and "A10G" in str(error.value)


def test_gpu_hours_scale_inversely_with_mfu_and_peak():
    flops = 1e18
    h200 = get_gpu("H200")
    assert gpu_hours(flops, h200, 0.25) == pytest.approx(2 * gpu_hours(flops, h200, 0.5))
    assert gpu_hours(flops, h200, 1.0) == pytest.approx(flops / 989.4e12 / 3600)
    assert gpu_hours(flops, get_gpu("A100-80GB"), 0.5) > gpu_hours(flops, h200, 0.5)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            gpu_hours(flops, h200, bad)


def test_invalid_shapes_and_lengths_are_refused():
    with pytest.raises(ValueError, match="layers"):
        ModelShape("x", layers=0, hidden=8, intermediate=8, vocab=10, max_position=16)
    with pytest.raises(ValueError, match="seq_len"):
        forward_flops_per_token(BASE, 0)


def test_checkpoint_bytes_match_a_saved_safetensors_file(tmp_path):
    from transformers import ModernBertModel

    config = _config(vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                     num_attention_heads=2)
    model = ModernBertModel(config)
    model.save_pretrained(tmp_path)
    size = (tmp_path / "model.safetensors").stat().st_size
    predicted = checkpoint_bytes(shape_from_config(config.to_dict()))
    tensors = len(list(model.parameters()))
    assert predicted <= size <= predicted + 8 + 200 * tensors  # 8-byte length + JSON header, per tensor


def test_training_state_bytes_match_saved_weights_and_adamw_state(tmp_path):
    """12 bytes per parameter: fp32 weights plus AdamW's two fp32 moments, as torch saves them."""
    import torch
    from transformers import ModernBertModel

    config = _config(vocab_size=4096, hidden_size=128, intermediate_size=192, num_hidden_layers=2,
                     num_attention_heads=2)
    shape = shape_from_config(config.to_dict())
    model = ModernBertModel(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(input_ids=torch.randint(5, 4096, (2, 8))).last_hidden_state.sum().backward()
    optimizer.step()
    model.save_pretrained(tmp_path)
    buffer = io.BytesIO()
    torch.save(optimizer.state_dict(), buffer)
    saved = (tmp_path / "model.safetensors").stat().st_size + buffer.getbuffer().nbytes
    assert saved == pytest.approx(training_state_bytes(shape), rel=0.01)
    assert training_state_bytes(BASE) == 3 * checkpoint_bytes(BASE)
    assert math.isclose(checkpoint_bytes(BASE) / 1e6, 596.06, rel_tol=1e-4)
