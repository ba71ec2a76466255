"""The Runs page's panels: runs in training and deleting runs, the freeze sweep, what fine-tuning changed."""
