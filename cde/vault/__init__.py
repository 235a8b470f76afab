"""CDE: the card vault (tokenize, detokenize, keys) and the card ingress for S2S raw cards."""
