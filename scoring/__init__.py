"""scoring: rulebooks (YAML beside the code that reads them), the promotion model, TreeSHAP
explanations, ranking, and the funding policy and allocation. Takes frames, returns frames."""
