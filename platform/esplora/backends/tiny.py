"""Tiny random-weight twins of every model backend, written offline with ``save_pretrained``.

Each twin is the real architecture with tiny sizes and random (seeded) weights, its processor
and tokenizer built in memory (the tokenizers know the object vocabulary's words). They reload
through the same ``from_pretrained(path)`` calls as the real ids, so the tiny profile runs every
code path offline in milliseconds; their outputs are meaningless. Adding a twin is one builder
function and one entry in :data:`TINY_BUILDERS`.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

from esplora.backends.extractors import VLM_PROMPT
from esplora.core.vocabulary import load_vocabulary

__all__ = ["TINY_BUILDERS", "TINY_FORMAT", "make_tiny", "tiny_info", "tiny_words"]

TINY_FORMAT = 1  # bump when the builders change what they write
_MARKER = "esplora-tiny.json"
_EXTRA_WORDS = "a an the of and to in on at left right above below behind front next near with"

Builder = Callable[[Path], str]  # writes a model into the directory, returns its architecture


def tiny_words() -> list[str]:
    """The words the tiny tokenizers know: the vocabulary's, the VLM prompt's and a few more."""
    known = set(load_vocabulary().words()) | set(_EXTRA_WORDS.split())
    known |= {w.strip(".,:").lower() for w in VLM_PROMPT.split()}
    return sorted(w.lower() for w in known if w.isascii() and w.isalnum())


def _image_processor(name: str, **kwargs: Any) -> Any:
    """The PIL image processor class when this transformers has one (no torchvision needed)."""
    import transformers

    cls = getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)
    return cls(**kwargs)


def _bert_tokenizer(words: Iterable[str]) -> Any:
    from transformers import BertTokenizer

    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = [*specials, *".,;:!?'-()", *letters, *(f"##{c}" for c in letters), *words]
    vocab = {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}
    return BertTokenizer(vocab=vocab, model_max_length=256)


def _bpe(words: Iterable[str], prefix: str, suffix: str) -> tuple[dict[str, int], list[Any]]:
    """A BPE vocabulary and merges that spell every word as one token (characters as fallback)."""
    vocab: dict[str, int] = {}
    merges: dict[tuple[str, str], None] = {}
    chars = sorted({c for w in words for c in w} | set("abcdefghijklmnopqrstuvwxyz.,"))
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(prefix + c + suffix if prefix else c + suffix, len(vocab))
    for word in words:
        parts = [*([prefix] if prefix else []), *word[:-1], word[-1] + suffix]
        vocab.setdefault(parts[0], len(vocab))
        while len(parts) > 1:
            merged = parts[0] + parts[1]
            merges.setdefault((parts[0], parts[1]), None)
            vocab.setdefault(merged, len(vocab))
            parts = [merged, *parts[2:]]
    return vocab, list(merges)


def build_grounding_dino(path: Path) -> str:
    """Grounding DINO: Swin backbone (embed 8), BERT text side (hidden 16), d_model 32."""
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoProcessor,
        SwinConfig,
    )

    tokenizer = _bert_tokenizer(tiny_words())
    image_processor = _image_processor(
        "GroundingDinoImageProcessor", size={"shortest_edge": 128, "longest_edge": 192}
    )
    config = GroundingDinoConfig(
        backbone_config=SwinConfig(
            embed_dim=8, depths=[1, 1, 1, 1], num_heads=[1, 1, 1, 1], window_size=4,
            image_size=64, out_indices=[2, 3, 4],
        ),
        text_config=BertConfig(
            vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1,
            num_attention_heads=2, intermediate_size=32, max_position_embeddings=256,
        ),
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20,
    )  # fmt: skip
    GroundingDinoForObjectDetection(config).save_pretrained(path)
    GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(
        path
    )
    return "GroundingDinoForObjectDetection"


def build_owlv2(path: Path) -> str:
    """OWLv2: CLIP-style text and vision towers of hidden size 16, 64×64 padded-square input."""
    from transformers import CLIPTokenizer, Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor

    # "!" first, as in CLIP: OWLv2 masks a query whose first token id is 0 (its padding).
    pieces, merges = _bpe(tiny_words(), prefix="", suffix="</w>")
    order = ["!", *(p for p in pieces if p != "!"), "<|startoftext|>", "<|endoftext|>"]
    vocab = {piece: i for i, piece in enumerate(order)}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, pad_token="!", model_max_length=16)
    bos, eos = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    config = Owlv2Config(
        text_config=dict(
            vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, max_position_embeddings=16, bos_token_id=bos,
            eos_token_id=eos, pad_token_id=0,
        ),
        vision_config=dict(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            image_size=64, patch_size=16,
        ),
        projection_dim=16,
    )  # fmt: skip
    Owlv2ForObjectDetection(config).save_pretrained(path)
    image_processor = _image_processor("Owlv2ImageProcessor", size={"height": 64, "width": 64})
    Owlv2Processor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return "Owlv2ForObjectDetection"


def build_depth_anything(path: Path) -> str:
    """Depth Anything: DINOv2 backbone of hidden size 32, relative depth, 56-pixel input."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(
        image_size=56, patch_size=14, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
        intermediate_size=64, out_indices=[1, 2, 3, 4], reshape_hidden_states=False,
    )  # fmt: skip
    config = DepthAnythingConfig(
        backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
        fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="relative",
    )  # fmt: skip
    DepthAnythingForDepthEstimation(config).save_pretrained(path)
    _image_processor(
        "DPTImageProcessor", size={"height": 56, "width": 56}, keep_aspect_ratio=True,
        ensure_multiple_of=14, image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225], resample=3,
    ).save_pretrained(path)  # fmt: skip
    return "DepthAnythingForDepthEstimation"


_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | upper }}: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
    "{% else %}{{ part['text'] }}{% endif %}{% endfor %}\n{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)


def build_vlm(path: Path) -> str:
    """LLaVA (CLIP vision + Llama text, hidden 16), image-text-to-text, with a chat template."""
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlamaTokenizer,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    pieces, merges = _bpe(tiny_words(), prefix="▁", suffix="")
    vocab = {piece: i for i, piece in enumerate(["<unk>", "<s>", "</s>", "<pad>", *pieces])}
    tokenizer = LlamaTokenizer(vocab=vocab, merges=merges, pad_token="<pad>")
    tokenizer.add_tokens(["<image>"], special_tokens=True)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(
            hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, patch_size=8,
        ),
        text_config=LlamaConfig(
            vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
            bos_token_id=1, eos_token_id=2, pad_token_id=3,
        ),
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default", vision_feature_layer=-1,
    )  # fmt: skip
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = 3
    model.save_pretrained(path)
    image_processor = _image_processor(
        "CLIPImageProcessor", size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
        vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=_CHAT_TEMPLATE,
    ).save_pretrained(path)  # fmt: skip
    return "LlavaForConditionalGeneration"


def _clip_text(words: Sequence[str], *, projection: bool = False) -> tuple[Any, Any]:
    """A tiny CLIP text encoder (hidden 16, 32 positions) and its BPE tokenizer."""
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
    )

    pieces, merges = _bpe(words, prefix="", suffix="</w>")
    order = ["!", *(p for p in pieces if p != "!"), "<|startoftext|>", "<|endoftext|>"]
    vocab = {piece: i for i, piece in enumerate(order)}
    eos = vocab["<|endoftext|>"]
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, pad_token="<|endoftext|>",
                              model_max_length=32)  # fmt: skip
    config = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=32, projection_dim=16,
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=eos, pad_token_id=eos,
    )  # fmt: skip
    model = (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)
    return model, tokenizer


def _t5_text(words: Sequence[str]) -> tuple[Any, Any]:
    """A tiny T5 encoder (d_model 32) and a unigram tokenizer with one piece per known word."""
    from transformers import T5Config, T5EncoderModel, T5Tokenizer

    chars = sorted({c for w in words for c in w} | set(".,"))
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(f"▁{w}", -1.0) for w in words] + [(c, -5.0) for c in chars]
    tokenizer = T5Tokenizer(vocab=pieces, extra_ids=0, model_max_length=64)
    config = T5Config(
        vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
        relative_attention_num_buckets=8, relative_attention_max_distance=32,
    )  # fmt: skip
    return T5EncoderModel(config), tokenizer


def _vae(latent_channels: int, **kwargs: Any) -> Any:
    """A 4-level ``AutoencoderKL`` (8× down, as the real ones) with 8 channels per level."""
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 8, 8), layers_per_block=1, latent_channels=latent_channels,
        norm_num_groups=4, sample_size=64, **kwargs,
    )  # fmt: skip


def build_flux(path: Path) -> str:
    """FLUX.1 (dev-style, guidance embedded): 1 + 1 blocks of 2 heads × 16, CLIP + T5 text."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    clip, clip_tokenizer = _clip_text(tiny_words())
    t5, t5_tokenizer = _t5_text(tiny_words())
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=t5.config.d_model,
        pooled_projection_dim=clip.config.hidden_size, axes_dims_rope=(4, 4, 8),
        guidance_embeds=True,
    )  # fmt: skip
    vae = _vae(16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
               use_post_quant_conv=False)  # fmt: skip
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15,
        base_image_seq_len=256, max_image_seq_len=4096,
    )  # fmt: skip
    FluxPipeline(
        scheduler=scheduler, vae=vae, text_encoder=clip, tokenizer=clip_tokenizer,
        text_encoder_2=t5, tokenizer_2=t5_tokenizer, transformer=transformer,
    ).save_pretrained(path)  # fmt: skip
    return "FluxPipeline"


def build_sdxl(path: Path) -> str:
    """SDXL: a two-block UNet with ``text_time`` conditioning and two tiny CLIP encoders."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    clip, clip_tokenizer = _clip_text(tiny_words())
    clip_2, clip_tokenizer_2 = _clip_text(tiny_words(), projection=True)
    time_dim = 8
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16),
        layers_per_block=1, norm_num_groups=4, attention_head_dim=(2, 4),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), use_linear_projection=True,
        cross_attention_dim=clip.config.hidden_size + clip_2.config.hidden_size,
        addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=6 * time_dim + clip_2.config.projection_dim,
    )  # fmt: skip
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        timestep_spacing="leading", steps_offset=1,
    )  # fmt: skip
    StableDiffusionXLPipeline(
        vae=_vae(4, scaling_factor=0.13025), text_encoder=clip, text_encoder_2=clip_2,
        tokenizer=clip_tokenizer, tokenizer_2=clip_tokenizer_2, unet=unet, scheduler=scheduler,
        add_watermarker=False,
    ).save_pretrained(path)  # fmt: skip
    return "StableDiffusionXLPipeline"


# Registry name -> builder (the generators' twins are diffusers pipelines: model_index.json).
TINY_BUILDERS: Mapping[str, Builder] = MappingProxyType(
    {
        "grounding-dino": build_grounding_dino,
        "owlv2": build_owlv2,
        "depth-anything": build_depth_anything,
        "vlm": build_vlm,
        "flux": build_flux,
        "sdxl": build_sdxl,
    }
)


def _build(name: str, builder: Builder, out_dir: Path, seed: int) -> Path:
    """Write one twin into a scratch directory, then move it into place."""
    import torch

    target = out_dir / name
    with tempfile.TemporaryDirectory(prefix=f".{name}-", dir=out_dir) as scratch:
        work = Path(scratch) / name
        torch.manual_seed(seed)
        architecture = builder(work)
        marker = {"name": name, "architecture": architecture, "seed": seed, "format": TINY_FORMAT}
        (work / _MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    return target


def make_tiny(
    out_dir: Path,
    *,
    names: Sequence[str] | None = None,
    seed: int = 0,
    on_model: Callable[[str, Path, float], None] | None = None,
) -> dict[str, Path]:
    """Write the tiny twins (all, or ``names``) under ``out_dir/<name>``; returns their paths.

    Deterministic for a seed. ``on_model(name, path, seconds)`` is called after each one.
    """
    chosen = list(TINY_BUILDERS) if names is None else list(names)
    unknown = [n for n in chosen if n not in TINY_BUILDERS]
    if unknown:
        raise ValueError(f"no tiny model for {unknown}; known: {', '.join(TINY_BUILDERS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    with _quiet_transformers():
        for name in chosen:
            started = time.perf_counter()
            written[name] = _build(name, TINY_BUILDERS[name], out_dir, seed)
            if on_model is not None:
                on_model(name, written[name], time.perf_counter() - started)
    return written


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No per-file progress bars while saving (the caller reports progress per model)."""
    from transformers.utils import logging

    enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            logging.enable_progress_bar()


def tiny_info(path: Path) -> dict[str, Any] | None:
    """What ``make_tiny`` recorded about the twin in ``path``, or ``None`` if there is none."""
    try:
        info: dict[str, Any] = json.loads((path / _MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info
