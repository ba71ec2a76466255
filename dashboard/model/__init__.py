"""The Model page's panels: the freeze section, the one-click changes and fit's options, the LR finder."""
