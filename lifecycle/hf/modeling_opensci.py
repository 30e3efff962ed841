"""OpenSciForCausalLM: the open-sci-ref architecture as this library trains it
(model/config.cpp, `qk_norm` and `bias`; reference/model.cpp is the fp32
definition), for transformers. The Hugging Face export of a QK-norm model
(lifecycle/export.cpp) copies this file and configuration_opensci.py into its
folder; load it with

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

Written for and checked with transformers 4.49.0 on torch 1.13
(test/test-hf-transformers, test/test-lm-eval).

What it computes: Llama (transformers' LlamaForCausalLM, whose pieces it
reuses: embeddings, RMSNorm, RoPE with rope_scaling, SwiGLU MLP, grouped-query
attention, KV cache, generate) with one change in the attention. Per layer, with
x the input of the attention after its RMSNorm:

    q = x Wq^T + bq,  k = x Wk^T + bk,  v = x Wv^T + bv     (biases: attention_bias)
    with qk_layernorm, for every token and every head h (vectors of head_dim):
        q_h = q_norm.weight * q_h / sqrt(mean(q_h^2) + rms_norm_eps)
        k_h = k_norm.weight * k_h / sqrt(mean(k_h^2) + rms_norm_eps)
      one weight of head_dim for q and one for k per layer, shared by the heads;
    then RoPE on q and k (rotate-half layout, as LlamaForCausalLM),
    softmax(q k^T / sqrt(head_dim)) v over the causal past, o_proj (+ bias).

The KV cache holds k after its norm and RoPE, so a cached step computes what a
full forward pass does. The MLP's biases follow mlp_bias. Tensor names are
Llama's, plus model.layers.N.self_attn.q_norm.weight and .k_norm.weight.
"""
import torch.nn as nn
from transformers.generation import GenerationMixin
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.models.llama.modeling_llama import (
    LlamaAttention,
    LlamaDecoderLayer,
    LlamaForCausalLM,
    LlamaMLP,
    LlamaModel,
    LlamaPreTrainedModel,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
    eager_attention_forward,
)

from .configuration_opensci import OpenSciConfig


class OpenSciAttention(LlamaAttention):
    """LlamaAttention with the per-head RMSNorm of q and k before RoPE."""

    def __init__(self, config, layer_idx):
        super().__init__(config, layer_idx)
        self.qk_layernorm = config.qk_layernorm
        if self.qk_layernorm:
            self.q_norm = LlamaRMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = LlamaRMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def forward(self, hidden_states, position_embeddings, attention_mask, past_key_value=None, cache_position=None,
                **kwargs):
        tokens = hidden_states.shape[:-1]  # (batch, sequence)
        heads = (*tokens, -1, self.head_dim)
        q = self.q_proj(hidden_states).view(heads)
        k = self.k_proj(hidden_states).view(heads)
        v = self.v_proj(hidden_states).view(heads)
        if self.qk_layernorm:
            # The last dimension is one head's vector: each is normalised alone.
            q = self.q_norm(q)
            k = self.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (batch, heads, sequence, head_dim)
        cos, sin = position_embeddings
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        if past_key_value is not None:
            k, v = past_key_value.update(k, v, self.layer_idx,
                                         {"sin": sin, "cos": cos, "cache_position": cache_position})
        attention = eager_attention_forward
        if self.config._attn_implementation != "eager" and not kwargs.get("output_attentions", False):
            attention = ALL_ATTENTION_FUNCTIONS[self.config._attn_implementation]
        out, weights = attention(self, q, k, v, attention_mask, scaling=self.scaling,
                                 dropout=self.attention_dropout if self.training else 0.0, **kwargs)
        return self.o_proj(out.reshape(*tokens, -1).contiguous()), weights


class OpenSciDecoderLayer(LlamaDecoderLayer):
    """LlamaDecoderLayer (its forward: pre-norm residual attention, then MLP) with OpenSciAttention."""

    def __init__(self, config, layer_idx):
        nn.Module.__init__(self)  # not LlamaDecoderLayer's: it would build a LlamaAttention first
        self.hidden_size = config.hidden_size
        self.self_attn = OpenSciAttention(config, layer_idx)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)


class OpenSciPreTrainedModel(LlamaPreTrainedModel):
    config_class = OpenSciConfig
    _no_split_modules = ["OpenSciDecoderLayer"]


class OpenSciModel(OpenSciPreTrainedModel, LlamaModel):
    """LlamaModel (its forward: embeddings, causal mask, RoPE tables, layers, final norm) of OpenSciDecoderLayers."""

    def __init__(self, config):
        LlamaPreTrainedModel.__init__(self, config)  # not LlamaModel's: its layers are built here
        self.padding_idx = config.pad_token_id
        self.vocab_size = config.vocab_size
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(OpenSciDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()


class OpenSciForCausalLM(OpenSciPreTrainedModel, LlamaForCausalLM, GenerationMixin):
    """LlamaForCausalLM (its forward, loss, generate with a KV cache) over OpenSciModel; the head is
    tied to the embeddings when tie_word_embeddings is true."""

    def __init__(self, config):
        LlamaPreTrainedModel.__init__(self, config)
        self.model = OpenSciModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()
