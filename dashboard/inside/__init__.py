"""The See inside page's panels: feature maps, the probe and its map, over backbones loaded once per process."""
