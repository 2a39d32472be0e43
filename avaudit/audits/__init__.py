"""The audits: pure numpy/pandas functions over logits and tables. No torch, no model, no I/O."""
