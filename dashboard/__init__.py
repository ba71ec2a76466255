"""The dashboard's own code: session state, the sidebar, panels and view code (tables, labels, charts).

The scripts in pages/ are thin. A page's own panels live in its subpackage (dataset, model, inside, train,
inference, runs, classroom); what several pages share stays at the top. The engine (tlcore) never imports it.
"""
