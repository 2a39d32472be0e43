"""Confounders measured from the decoded window: still pictures, silent sound and duplicate clips.

Pure numpy (and pandas for the duplicate table): no torch, no model, no I/O, so the signals can be
computed wherever a clip is decoded and the duplicate search can run on signatures alone.
"""
