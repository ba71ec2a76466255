"""The dashboard's own code: session state, the sidebar, panels and view code (tables, labels, charts).

The scripts in pages/ are thin; everything they share lives here. The engine (tlcore) never imports it.
"""
