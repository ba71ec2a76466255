"""The Inference page's panels: the models to choose, images tried and explained, evaluation, comparison."""
