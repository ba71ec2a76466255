"""The Dataset page's panels: the image grid, the augmentation preview and the photo maker."""
