"""Media: manifests, decoding (the MediaError family), onsets, the clip dataset, mp4 writing. No model code."""
