"""Configuration of OpenSciForCausalLM: the open-sci-ref architecture as this
library trains and exports it (a Hugging Face folder with
`trust_remote_code=True`; see modeling_opensci.py and README.md, Exporting).

A Llama configuration (LlamaConfig: every key and default of it) with one key
more:

  qk_layernorm   RMSNorm over each attention head's query and key vectors
                 (a learned weight of head_dim for q and one for k per layer,
                 epsilon rms_norm_eps), applied after the q and k projections
                 and before RoPE. Default false: without the key the model is
                 plain Llama, and a folder holding q_norm and k_norm weights
                 does not load as the model that was trained.

The open-sci-ref models have biases in every linear layer: attention_bias
(q, k, v and o projections) and mlp_bias (gate, up and down), both LlamaConfig
keys. Written for transformers 4.49.0 (checked on torch 1.13, CPU).
"""
from transformers.models.llama.configuration_llama import LlamaConfig


class OpenSciConfig(LlamaConfig):
    model_type = "opensci"

    def __init__(self, qk_layernorm=False, **kwargs):
        self.qk_layernorm = qk_layernorm
        super().__init__(**kwargs)
